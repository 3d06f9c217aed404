"""Our OpenAI-compatible server as OpenAI's own Python client sees it: one case per feature
(chat, streaming, legacy completions, structured output, tool calls, n, stop, seed, logprobs,
embeddings) and per error the API promises, each recorded as pass/fail with a detail.

    ~/.cache/llm-rs/openai-venv/bin/python scripts/openai_client_check.py \
        --base-url http://127.0.0.1:8080 [--embeddings FILE] [--api-key KEY]

The venv comes from scripts/fetch-openai-client.sh. The model under test is tiny
(SmolLM2-135M-Instruct), so the cases check that outputs are well formed, not that they are
right. Errors the client cannot send (malformed JSON, a field of the wrong type) and the API-key
cases go through urllib. Prints {"cases": {name: {"ok", "detail"}}, "passed", "failed"} on
stdout; exits 1 if any case failed.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

import jsonschema
import openai

# Small budgets keep the whole run to a minute or two on a 2-core CPU.
MAX_TOKENS = 32

PERSON = {
    "type": "object",
    # maxLength bounds the output, so a rambling name cannot run past max_tokens.
    "properties": {"name": {"type": "string", "maxLength": 24}, "age": {"type": "integer", "minimum": 0, "maximum": 150}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}},
    "required": ["city"],
}
TOOLS = [{
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather in a city.", "parameters": WEATHER_PARAMS},
}]
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


class Fail(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Fail(msg)


def check_usage(u, max_tokens=None, finish=None):
    expect(u is not None, "no usage")
    p, c, t = u.prompt_tokens, u.completion_tokens, u.total_tokens
    expect(all(isinstance(x, int) for x in (p, c, t)), f"usage not integers: {u}")
    expect(p > 0 and c >= 0, f"usage counts out of range: {u}")
    expect(t == p + c, f"total_tokens {t} != {p} + {c}")
    if max_tokens is not None:
        expect(c <= max_tokens, f"completion_tokens {c} > max_tokens {max_tokens}")
        if finish == "length":
            expect(c == max_tokens, f"finish_reason length but completion_tokens {c} != {max_tokens}")
    return f"usage {p}+{c}={t}"


def check_error_body(body, status):
    expect(isinstance(body, dict) and isinstance(body.get("error"), dict), f"HTTP {status}: no error object: {body!r:.200}")
    err = body["error"]
    expect(isinstance(err.get("message"), str) and err["message"], f"HTTP {status}: no error.message: {err}")
    expect(isinstance(err.get("type"), str) and err["type"], f"HTTP {status}: no error.type: {err}")
    return err


def tool_call_ok(name, arguments):
    expect(name == "get_weather", f"tool name {name!r}")
    try:
        args = json.loads(arguments)
    except ValueError as e:
        raise Fail(f"arguments are not JSON ({e}): {arguments!r}")
    expect(isinstance(args, dict), f"arguments are not an object: {arguments!r}")
    jsonschema.validate(args, WEATHER_PARAMS)
    return args


class Checker:
    def __init__(self, args):
        self.base = args.base_url.rstrip("/")
        self.key = args.api_key
        self.timeout = args.timeout
        # max_retries=0: an error must reach us as the server sent it, not be retried away.
        self.client = openai.OpenAI(base_url=self.base + "/v1", api_key=args.api_key or "none",
                                    timeout=args.timeout, max_retries=0)
        self.embeddings_file = args.embeddings
        self.model = None
        self.embedding_model = args.embedding_model
        self.cases = {}

    def run(self, name, fn):
        start = time.perf_counter()
        try:
            ok, detail = True, fn()
        except Fail as e:
            ok, detail = False, str(e)
        except jsonschema.ValidationError as e:
            ok, detail = False, f"schema: {e.message}"
        except Exception as e:  # a client exception is a failed case, not a crashed run
            ok, detail = False, f"{type(e).__name__}: {e}"
        self.cases[name] = {"ok": ok, "detail": str(detail)[:500]}
        print(f"{'PASS' if ok else 'FAIL'} {name} ({time.perf_counter() - start:.1f} s): {str(detail)[:200]}", file=sys.stderr)

    def raw(self, method, path, body=None, headers=None, key=True):
        """(status, parsed JSON or text) of one request, errors included."""
        h = {"Content-Type": "application/json"}
        if key and self.key:
            h["Authorization"] = f"Bearer {self.key}"
        h.update(headers or {})
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def api_error(self, call):
        """The status and error object of a call that must fail."""
        try:
            call()
        except openai.APIStatusError as e:
            try:
                body = e.response.json()
            except ValueError:
                body = e.response.text
            return e.status_code, check_error_body(body, e.status_code)
        raise Fail("the request succeeded")

    def chat(self, content, **kw):
        kw.setdefault("max_tokens", MAX_TOKENS)
        return self.client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": content}], **kw)

    # --- cases -------------------------------------------------------------------------------

    def health(self):
        status, body = self.raw("GET", "/health")
        expect(status == 200 and isinstance(body, dict) and body.get("status") == "ok", f"HTTP {status}: {body!r:.200}")
        return "ok"

    def models(self):
        data = self.client.models.list().data
        expect(data, "no models")
        for m in data:
            expect(isinstance(m.id, str) and m.id and m.object == "model", f"bad model entry {m}")
        self.model = data[0].id
        if self.embedding_model is None and len(data) > 1:
            self.embedding_model = data[1].id
        return ", ".join(m.id for m in data)

    def chat_plain(self):
        r = self.chat("Name three colours.", temperature=0)
        expect(r.object == "chat.completion" and r.id, f"object {r.object!r}, id {r.id!r}")
        expect(len(r.choices) == 1, f"{len(r.choices)} choices")
        c = r.choices[0]
        expect(c.message.role == "assistant", f"role {c.message.role!r}")
        expect(isinstance(c.message.content, str) and c.message.content.strip(), f"empty content {c.message.content!r}")
        expect(c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason!r}")
        return f"{check_usage(r.usage, MAX_TOKENS, c.finish_reason)}, {c.finish_reason}: {c.message.content!r}"

    def timings(self):
        r = self.chat("Say hello.", max_tokens=8)
        t = (r.model_extra or {}).get("timings")
        expect(isinstance(t, dict), f"no timings object: {r.model_extra}")
        keys = ["prompt_n", "prompt_ms", "prompt_per_second", "predicted_n", "predicted_ms", "predicted_per_second"]
        missing = [k for k in keys if not isinstance(t.get(k), (int, float)) or t[k] < 0]
        expect(not missing, f"missing or negative: {missing} in {t}")
        expect(t["predicted_n"] == r.usage.completion_tokens, f"predicted_n {t['predicted_n']} != completion_tokens {r.usage.completion_tokens}")
        return json.dumps(t)

    def chat_stream(self):
        stream = self.chat("Tell me a fact about the sea.", stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        expect(chunks, "no chunks")
        ids = {c.id for c in chunks}
        expect(len(ids) == 1, f"chunk ids differ: {ids}")
        expect(all(c.object == "chat.completion.chunk" for c in chunks), "a chunk's object is not chat.completion.chunk")
        text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
        finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
        expect(text.strip(), "streamed text is empty")
        expect(finishes in (["stop"], ["length"]), f"finish_reasons {finishes}")
        last = chunks[-1]
        expect(last.usage is not None and last.choices == [], f"last chunk is not a usage chunk: {last}")
        expect(last.usage.completion_tokens >= 1, f"usage {last.usage}")
        timings = "timings" in (last.model_extra or {})
        return f"{len(chunks)} chunks, {check_usage(last.usage, MAX_TOKENS, finishes[0])}, timings in last chunk: {timings}: {text!r}"

    def sse_format(self):
        # The client hides the wire format; read it raw: data lines, blank-line separated, [DONE] last.
        body = {"model": self.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "stream": True}
        status, text = self.raw("POST", "/v1/chat/completions", body)
        expect(status == 200 and isinstance(text, str), f"HTTP {status}: {text!r:.200}")
        events = [e for e in text.replace("\r\n", "\n").split("\n\n") if e.strip()]
        expect(events and events[-1].strip() == "data: [DONE]", f"does not end with data: [DONE]: {text[-80:]!r}")
        for e in events[:-1]:
            lines = [l for l in e.split("\n") if l and not l.startswith(":")]
            expect(len(lines) == 1 and lines[0].startswith("data: "), f"event is not one data line: {e!r:.120}")
            json.loads(lines[0][len("data: "):])
        return f"{len(events)} events"

    def completions(self):
        r = self.client.completions.create(model=self.model, prompt="Once upon a time", max_tokens=MAX_TOKENS, temperature=0)
        expect(r.object == "text_completion", f"object {r.object!r}")
        c = r.choices[0]
        expect(c.text.strip(), f"empty text {c.text!r}")
        expect(c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason!r}")
        return f"{check_usage(r.usage, MAX_TOKENS, c.finish_reason)}: {c.text!r}"

    def completions_stream(self):
        stream = self.client.completions.create(model=self.model, prompt="The capital of France is", max_tokens=MAX_TOKENS,
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(ch.text for c in chunks for ch in c.choices)
        finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
        expect(text.strip(), "streamed text is empty")
        expect(finishes in (["stop"], ["length"]), f"finish_reasons {finishes}")
        last = chunks[-1]
        expect(last.usage is not None and not last.choices, f"last chunk is not a usage chunk: {last}")
        return f"{len(chunks)} chunks, {check_usage(last.usage, MAX_TOKENS, finishes[0])}: {text!r}"

    def json_schema(self):
        rf = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
        r = self.chat("Invent a person: give a name and an age as JSON.", response_format=rf, max_tokens=64, temperature=0)
        content = r.choices[0].message.content
        value = json.loads(content)
        jsonschema.validate(value, PERSON)
        return content

    def json_object(self):
        r = self.chat('Describe a cat as a JSON object with the keys "name" and "colour".', response_format={"type": "json_object"}, max_tokens=64, temperature=0)
        content = r.choices[0].message.content
        expect(r.choices[0].finish_reason == "stop", f"finish_reason {r.choices[0].finish_reason!r} (JSON cut short?): {content!r}")
        expect(isinstance(json.loads(content), dict), f"not an object: {content!r}")
        return content

    def tool_result_turn(self, question, call_id, name, arguments):
        messages = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": json.dumps({"temperature_c": 21, "condition": "sunny"})},
        ]
        r = self.client.chat.completions.create(model=self.model, messages=messages, max_tokens=MAX_TOKENS, temperature=0)
        answer = r.choices[0].message.content
        expect(isinstance(answer, str) and answer.strip(), f"no text answer after the tool result: {r.choices[0].message}")
        return answer

    def tool_call(self):
        q = "What is the weather in Paris?"
        r = self.client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": q}], tools=TOOLS,
                                                tool_choice=FORCE_WEATHER, max_tokens=64, temperature=0)
        c = r.choices[0]
        # OpenAI itself answers "stop" when tool_choice names the function, "tool_calls" otherwise.
        expect(c.finish_reason in ("tool_calls", "stop"), f"finish_reason {c.finish_reason!r}")
        calls = c.message.tool_calls or []
        expect(calls, f"no tool_calls: {c.message}")
        for call in calls:
            expect(call.type == "function" and call.id, f"bad call {call}")
            args = tool_call_ok(call.function.name, call.function.arguments)
        answer = self.tool_result_turn(q, calls[0].id, calls[0].function.name, calls[0].function.arguments)
        return f"{len(calls)} call(s), args {args}, then: {answer!r}"

    def tool_call_stream(self):
        # Paris as in tool_call: greedy SmolLM2-135M spells Tokyo as an endless made-up word
        # (a valid but unfinished string, cut by max_tokens).
        q = "What is the weather in Paris?"
        stream = self.client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": q}], tools=TOOLS,
                                                     tool_choice=FORCE_WEATHER, max_tokens=64, temperature=0, stream=True,
                                                     stream_options={"include_usage": True})
        calls, finishes, usage = {}, [], None
        for chunk in stream:
            usage = chunk.usage or usage
            for ch in chunk.choices:
                if ch.finish_reason:
                    finishes.append(ch.finish_reason)
                # Deltas as OpenAI sends them: id, type and name first, then argument pieces, by index.
                for d in ch.delta.tool_calls or []:
                    call = calls.setdefault(d.index, {"id": "", "type": "", "name": "", "arguments": ""})
                    call["id"] = d.id or call["id"]
                    call["type"] = d.type or call["type"]
                    if d.function:
                        call["name"] += d.function.name or ""
                        call["arguments"] += d.function.arguments or ""
        expect(calls, "no tool_calls deltas")
        expect(finishes in (["tool_calls"], ["stop"]), f"finish_reasons {finishes}")
        expect(usage is not None, "no usage chunk")
        for call in calls.values():
            expect(call["id"] and call["type"] == "function", f"call without id or type: {call}")
            args = tool_call_ok(call["name"], call["arguments"])
        first = calls[min(calls)]
        answer = self.tool_result_turn(q, first["id"], first["name"], first["arguments"])
        return f"{len(calls)} call(s), args {args}, then: {answer!r}"

    def n_choices(self):
        r = self.chat("Write one sentence about trees.", n=2, temperature=1.0, seed=7, max_tokens=16)
        expect(sorted(c.index for c in r.choices) == [0, 1], f"indices {[c.index for c in r.choices]}")
        texts = [c.message.content for c in sorted(r.choices, key=lambda c: c.index)]
        expect(all(isinstance(t, str) and t.strip() for t in texts), f"an empty choice: {texts}")
        check_usage(r.usage)
        return f"completion_tokens {r.usage.completion_tokens}: {texts}"

    def stop_sequence(self):
        r = self.chat("Repeat exactly: 1, 2, 3, 4, 5, 6", stop=["4"], temperature=0)
        c = r.choices[0]
        expect("4" not in (c.message.content or ""), f"text has the stop string: {c.message.content!r}")
        expect(c.finish_reason == "stop", f"finish_reason {c.finish_reason!r}: {c.message.content!r}")
        return repr(c.message.content)

    def seed(self):
        texts = [self.chat("Write a line of a poem.", temperature=1.0, seed=1234, max_tokens=24).choices[0].message.content
                 for _ in range(2)]
        expect(texts[0] == texts[1], f"seed 1234 gave {texts[0]!r} then {texts[1]!r}")
        expect(texts[0].strip(), "empty text")
        return repr(texts[0])

    def logprobs(self):
        r = self.chat("Say something short.", logprobs=True, top_logprobs=3, temperature=0, max_tokens=8)
        lp = r.choices[0].logprobs
        expect(lp is not None and lp.content, f"no logprobs.content: {lp}")
        for e in lp.content:
            expect(e.logprob <= 1e-6, f"logprob {e.logprob} > 0 for {e.token!r}")
            tops = [t.logprob for t in e.top_logprobs]
            expect(len(tops) == 3, f"{len(tops)} top_logprobs for {e.token!r}")
            expect(all(t <= 1e-6 for t in tops) and tops == sorted(tops, reverse=True), f"top_logprobs {tops}")
            # The top entry is the most likely token, so none is likelier than it.
            expect(e.logprob <= tops[0] + 1e-4, f"chosen {e.logprob} > top {tops[0]} for {e.token!r}")
        return f"{len(lp.content)} entries (completion_tokens {r.usage.completion_tokens}), first {lp.content[0].token!r} {lp.content[0].logprob:.3f}"

    def embeddings(self):
        rows = [json.loads(l) for l in open(self.embeddings_file) if l.strip()]
        expect(rows, f"{self.embeddings_file} is empty")
        model = self.embedding_model or self.model
        texts = [row["text"] for row in rows]
        # The client asks for base64 unless told; ask both ways.
        batch = self.client.embeddings.create(model=model, input=texts)
        single = self.client.embeddings.create(model=model, input=texts[0], encoding_format="float")
        expect([d.index for d in batch.data] == list(range(len(texts))), f"indices {[d.index for d in batch.data]}")
        expect(len(single.data) == 1, f"{len(single.data)} vectors for one string")
        worst = 0.0
        for got, row in [(d.embedding, r) for d, r in zip(batch.data, rows)] + [(single.data[0].embedding, rows[0])]:
            want = row["embedding"]
            expect(len(got) == len(want), f"dimension {len(got)} != {len(want)} for {row['text']!r:.40}")
            worst = max(worst, max(abs(a - b) for a, b in zip(got, want)))
        expect(worst < 1e-4, f"max abs diff {worst:.2e} >= 1e-4")
        return f"{len(rows)} texts on {model}, max abs diff {worst:.2e}"

    def err_malformed_json(self):
        status, body = self.raw("POST", "/v1/chat/completions", b'{"model": "x", "messages": [')
        check_error_body(body, status)
        expect(status == 400, f"HTTP {status}")
        return body["error"]["message"]

    def err_wrong_type(self):
        body = {"model": self.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": "many"}
        status, body = self.raw("POST", "/v1/chat/completions", body)
        check_error_body(body, status)
        expect(status == 400, f"HTTP {status}")
        return body["error"]["message"]

    def err_unknown_model(self):
        status, err = self.api_error(lambda: self.client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "Hi"}], max_tokens=4))
        expect(status == 404 and err.get("code") == "model_not_found", f"HTTP {status}, code {err.get('code')!r}")
        return err["message"]

    def err_context_length(self):
        prompt = " ".join(["word"] * 20000)
        status, err = self.api_error(lambda: self.chat(prompt, max_tokens=4))
        expect(status == 400 and err.get("code") == "context_length_exceeded", f"HTTP {status}, code {err.get('code')!r}")
        return err["message"]

    def err_max_tokens(self):
        status, err = self.api_error(lambda: self.chat("Hi", max_tokens=10**9))
        expect(status == 400 and err.get("param") == "max_tokens", f"HTTP {status}, param {err.get('param')!r}")
        return err["message"]

    def bad_schema(self, schema):
        rf = {"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}}
        status, err = self.api_error(lambda: self.chat("Hi", response_format=rf, max_tokens=4))
        expect(status == 400 and err.get("param") == "response_format", f"HTTP {status}, param {err.get('param')!r}")
        return err["message"]

    def auth(self, header, want):
        body = {"model": self.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        status, resp = self.raw("POST", "/v1/chat/completions", body, headers=header, key=False)
        if want != 200:
            check_error_body(resp, status)
        expect(status == want, f"HTTP {status}, want {want}")
        return f"HTTP {status}"

    def main(self):
        self.run("health", self.health)
        self.run("models", self.models)
        if self.model is None:
            return
        cases = [
            ("chat", self.chat_plain), ("timings", self.timings), ("chat_stream", self.chat_stream),
            ("sse_format", self.sse_format), ("completions", self.completions),
            ("completions_stream", self.completions_stream), ("json_schema", self.json_schema),
            ("json_object", self.json_object), ("tool_call", self.tool_call), ("tool_call_stream", self.tool_call_stream),
            ("n_2", self.n_choices), ("stop_sequence", self.stop_sequence), ("seed", self.seed),
            ("logprobs", self.logprobs),
        ]
        if self.embeddings_file:
            cases.append(("embeddings", self.embeddings))
        cases += [
            ("error_malformed_json", self.err_malformed_json), ("error_wrong_type", self.err_wrong_type),
            ("error_unknown_model", self.err_unknown_model), ("error_context_length", self.err_context_length),
            ("error_max_tokens", self.err_max_tokens),
            ("error_schema_type", lambda: self.bad_schema({"type": "object", "properties": {"a": {"type": "no-such-type"}}})),
            ("error_schema_pattern", lambda: self.bad_schema({"type": "string", "pattern": "(unclosed"})),
        ]
        if self.key:
            cases += [
                ("auth_no_key", lambda: self.auth({}, 401)),
                ("auth_wrong_key", lambda: self.auth({"Authorization": "Bearer wrong-" + self.key}, 401)),
                ("auth_right_key", lambda: self.auth({"Authorization": f"Bearer {self.key}"}, 200)),
            ]
        for name, fn in cases:
            self.run(name, fn)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8080")
    p.add_argument("--embeddings", help="JSON lines of {text, embedding} to compare /v1/embeddings against")
    p.add_argument("--embedding-model", help="model id for /v1/embeddings (default: the second one /v1/models lists)")
    p.add_argument("--api-key", help="the server's --api-key; adds the 401 cases")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    checker = Checker(p.parse_args())
    checker.main()
    passed = sum(c["ok"] for c in checker.cases.values())
    failed = len(checker.cases) - passed
    print(json.dumps({"cases": checker.cases, "passed": passed, "failed": failed}, indent=2))
    print(f"{passed} passed, {failed} failed", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
