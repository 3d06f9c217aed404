"""A bounded load test of an OpenAI-compatible server: C clients, each sending R chat requests one
after another (a seeded mix of streaming and not, max_tokens drawn from [min, max]), then the
latency, time-to-first-token and aggregate tokens/s of the lot.

    ~/.cache/llm-rs/openai-venv/bin/python scripts/serve_load.py --base-url http://127.0.0.1:8080 \
        --model ID --clients 32 --requests 4 --min-tokens 64 --max-tokens 256 --seed 0 \
        [--baseline] [--disconnect 8] [--out FILE]

--baseline first runs one client alone on the same number of requests, so the report gives the
speed-up of batching (aggregate / single tokens/s). --disconnect N afterwards opens N streams,
reads 3 chunks of each and drops them, then polls /metrics until llm_slots_busy is 0: a server
that keeps decoding for a client that left fails. The venv comes from
scripts/fetch-openai-client.sh. Prints the JSON report (and writes it to --out); exits 1 if a
request failed, the disconnect check failed or the run passed --timeout.
"""

import argparse
import asyncio
import json
import math
import random
import sys
import time
import urllib.request

import openai

TOPICS = [
    "a lighthouse keeper", "a lost robot", "a dragon who cannot fly", "the last tree on Mars",
    "a cat detective", "a time-travelling baker", "a shy ghost", "a river that runs uphill",
    "a chess match with the moon", "an old map", "a village of clocks", "a friendly storm",
    "a library at night", "a fox and a violin", "a city under the sea", "the first snow",
]
# Every finished request, so that a run cut by --timeout still reports what it measured.
FINISHED = []


def plan(seed, client, i, lo, hi):
    """The request of client `client`'s i-th turn: the same for every run with this seed."""
    rng = random.Random(f"{seed}-{client}-{i}")
    return {
        "stream": rng.random() < 0.5,
        "max_tokens": rng.randint(lo, hi),
        "prompt": f"Write a short story about {rng.choice(TOPICS)}.",
        "seed": rng.randrange(2**31),
    }


def percentile(xs, q):
    # Nearest rank: the smallest value with at least q of the sample at or below it.
    if not xs:
        return None
    xs = sorted(xs)
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


async def one_request(client, args, req):
    rec = {"stream": req["stream"], "max_tokens": req["max_tokens"], "ok": False}
    start = time.perf_counter()
    try:
        kw = dict(model=args.model, messages=[{"role": "user", "content": req["prompt"]}],
                  max_tokens=req["max_tokens"], temperature=0.7, seed=req["seed"])
        if req["stream"]:
            stream = await client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw)
            text, ttft, usage, chunks = [], None, None, 0
            async for chunk in stream:
                usage = chunk.usage or usage
                for ch in chunk.choices:
                    if ch.delta.content:
                        chunks += 1
                        ttft = ttft if ttft is not None else time.perf_counter() - start
                        text.append(ch.delta.content)
            text = "".join(text)
        else:
            r = await client.chat.completions.create(**kw)
            text, usage, chunks = r.choices[0].message.content or "", r.usage, 0
        rec["latency_s"] = time.perf_counter() - start
        rec["ttft_s"] = ttft if req["stream"] else rec["latency_s"]
        if usage is not None:
            rec["completion_tokens"] = usage.completion_tokens
        elif req["stream"] and args.count_chunks:
            # A server without stream_options (llama-cpp-python's) sends a chunk per token.
            rec["completion_tokens"], rec["usage_missing"] = chunks, True
        if not text.strip():
            rec["error"] = "empty text"
        elif "completion_tokens" not in rec:
            rec["error"] = "no usage"
        elif not 1 <= rec["completion_tokens"] <= req["max_tokens"]:
            rec["error"] = f"completion_tokens {rec['completion_tokens']} outside [1, max_tokens {req['max_tokens']}]"
        elif rec["ttft_s"] is None:
            rec["error"] = "no content chunk"
        else:
            rec["ok"] = True
    except Exception as e:  # one failed request is a data point, not the end of the run
        rec["latency_s"] = time.perf_counter() - start
        cause = f" ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
        rec["error"] = f"{type(e).__name__}: {e}{cause}"[:300]
    FINISHED.append(rec)
    return rec


async def run_clients(args, n_clients):
    client = openai.AsyncOpenAI(base_url=args.base_url.rstrip("/") + "/v1", api_key=args.api_key or "none",
                                timeout=args.request_timeout, max_retries=0)

    async def one_client(c):
        return [await one_request(client, args, plan(args.seed, c, i, args.min_tokens, args.max_tokens))
                for i in range(args.requests)]

    start = time.perf_counter()
    try:
        per_client = await asyncio.gather(*(one_client(c) for c in range(n_clients)))
    finally:
        await client.close()
    return summarize([r for rs in per_client for r in rs], time.perf_counter() - start)


def summarize(recs, wall):
    ok = [r for r in recs if r["ok"]]
    tokens = sum(r["completion_tokens"] for r in ok)
    stream_ttft = [r["ttft_s"] for r in ok if r["stream"]]
    out = {
        "requests": len(recs),
        "ok": len(ok),
        "failed": len(recs) - len(ok),
        "streamed": sum(r["stream"] for r in recs),
        "wall_s": round(wall, 3),
        "latency_p50_s": percentile([r["latency_s"] for r in ok], 0.50),
        "latency_p99_s": percentile([r["latency_s"] for r in ok], 0.99),
        # Non-streamed requests count their latency as their TTFT; the streamed-only figures
        # are the ones a chat UI feels.
        "ttft_p50_s": percentile([r["ttft_s"] for r in ok], 0.50),
        "ttft_p99_s": percentile([r["ttft_s"] for r in ok], 0.99),
        "ttft_stream_p50_s": percentile(stream_ttft, 0.50),
        "ttft_stream_p99_s": percentile(stream_ttft, 0.99),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2) if wall > 0 else None,
    }
    for k, v in out.items():
        if isinstance(v, float):
            out[k] = round(v, 4)
    missing = sum(r.get("usage_missing", False) for r in ok)
    if missing:
        out["usage_counted_from_chunks"] = missing
    errors = [r["error"] for r in recs if not r["ok"]]
    if errors:
        out["errors"] = errors[:5]
    return out


def metrics(base_url):
    """The /metrics samples by name (labels summed), or None when the server has none."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except Exception:
        return None
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{")[0].strip()
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            pass
    return values


async def disconnect(args):
    async def drop_one(i):
        # A client of its own, closed with the stream: nothing keeps the connection alive.
        client = openai.AsyncOpenAI(base_url=args.base_url.rstrip("/") + "/v1", api_key=args.api_key or "none",
                                    timeout=args.request_timeout, max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model=args.model, messages=[{"role": "user", "content": f"Write a long story about {TOPICS[i % len(TOPICS)]}."}],
                max_tokens=args.disconnect_max_tokens, temperature=0.7, stream=True)
            read = 0
            async for _ in stream:
                read += 1
                if read == 3:
                    break
            await stream.close()
            return read
        finally:
            await client.close()

    reads = await asyncio.gather(*(drop_one(i) for i in range(args.disconnect)), return_exceptions=True)
    closed = time.perf_counter()
    out = {"streams": args.disconnect, "chunks_read": [r if isinstance(r, int) else repr(r)[:100] for r in reads]}
    if any(r != 3 for r in reads):
        out.update(ok=False, note="a stream to drop failed or ended before its 3rd chunk (see --disconnect-max-tokens)")
        return out
    m = metrics(args.base_url)
    if m is None or "llm_slots_busy" not in m:
        out.update(ok=True, note="no llm_slots_busy in /metrics: not checked")
        return out
    out["slots_busy_after_close"] = m["llm_slots_busy"]
    generated = m.get("llm_generated_tokens_total")
    while time.perf_counter() - closed < 30:
        m = metrics(args.base_url) or {}
        if m.get("llm_slots_busy") == 0:
            out.update(ok=True, slots_free_after_s=round(time.perf_counter() - closed, 3))
            if generated is not None and "llm_generated_tokens_total" in m:
                out["tokens_generated_after_close"] = m["llm_generated_tokens_total"] - generated
            break
        await asyncio.sleep(0.1)
    else:
        out.update(ok=False, note=f"llm_slots_busy still {m.get('llm_slots_busy')} 30 s after the clients left")
    # The server must still answer after its clients walked off.
    after = await run_clients(argparse.Namespace(**{**vars(args), "requests": 1, "min_tokens": 8, "max_tokens": 8}), 1)
    out["request_after_ok"] = after["ok"] == 1
    out["ok"] = out["ok"] and out["request_after_ok"]
    return out


async def main_async(args):
    report = {k: getattr(args, k) for k in ("base_url", "model", "clients", "min_tokens", "max_tokens", "seed")}
    report["requests_per_client"] = args.requests
    if args.baseline:
        report["baseline"] = await run_clients(args, 1)
    report.update(await run_clients(args, args.clients))
    if args.baseline and report["baseline"]["tokens_per_s"]:
        report["ratio_vs_single"] = round(report["tokens_per_s"] / report["baseline"]["tokens_per_s"], 3)
    if args.disconnect:
        report["disconnect"] = await disconnect(args)
    return report


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8080")
    p.add_argument("--model", required=True)
    p.add_argument("--api-key")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=4, help="requests per client, one after another")
    p.add_argument("--min-tokens", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", action="store_true", help="first run one client alone")
    p.add_argument("--disconnect", type=int, default=0, metavar="N", help="then drop N streams and watch the slots free up")
    p.add_argument("--disconnect-max-tokens", type=int, default=2048,
                   help="max_tokens of the dropped streams: far more than a server that ignores the drop finishes in 30 s")
    p.add_argument("--count-chunks", action="store_true",
                   help="a stream without a usage chunk counts its content chunks as tokens")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run")
    p.add_argument("--request-timeout", type=float, default=600.0)
    p.add_argument("--out")
    args = p.parse_args()
    start = time.perf_counter()
    try:
        report = asyncio.run(asyncio.wait_for(main_async(args), args.timeout))
        report["timed_out"] = False
    except asyncio.TimeoutError:
        report = {"base_url": args.base_url, "model": args.model, "timed_out": True,
                  "error": f"the run took over --timeout {args.timeout} s",
                  "finished_before_timeout": summarize(FINISHED, time.perf_counter() - start)}
    report["passed"] = (not report["timed_out"] and report.get("failed") == 0
                        and report.get("baseline", {}).get("failed", 0) == 0
                        and report.get("disconnect", {}).get("ok", True))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
