"""Smoke test of the writer agent process (agent.py) over the AgentCore Runtime HTTP contract.

    python3 localstack/agent/check_agent.py [--url http://127.0.0.1:4630]

Standard library only. Prints one line per check; exit code 0 when all pass.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

SESSION_HEADER = "x-amzn-bedrock-agentcore-runtime-session-id"


def call(url, path, body=None, session=None):
    headers = {"content-type": "application/json"}
    if session:
        headers[SESSION_HEADER] = session
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, headers=headers, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read().decode()


def sse_events(text):
    return [json.loads(line[5:].strip()) for line in text.splitlines() if line.startswith("data:")]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:4630")
    url = parser.parse_args().url.rstrip("/")
    session = "check-" + uuid.uuid4().hex  # 38 characters, as AgentCore wants 33-256
    payload = {"topic": "markets", "notes": ["rates fell", {"source": "desk"}]}
    results = []

    def check(name, fn):
        try:
            fn()
            results.append(True)
            print(f"PASS  {name}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on
            results.append(False)
            print(f"FAIL  {name}: {type(exc).__name__}: {exc}", flush=True)

    def ping():
        status, _, body = call(url, "/ping")
        assert status == 200 and json.loads(body)["status"] in ("Healthy", "HealthyBusy"), body

    def invoke_twice():
        first = json.loads(call(url, "/invocations", payload, session)[2])
        second = json.loads(call(url, "/invocations", payload, session)[2])
        assert first["draft"] == "Draft on markets: (1) rates fell (2) {\"source\":\"desk\"}", first
        assert 0.55 <= first["confidence"] <= 0.95 and first["confidence"] == second["confidence"], (first, second)
        assert (first["session_turn"], second["session_turn"]) == (1, 2), (first, second)
        assert first["session_id"] == session, first

    def stream():
        status, ctype, body = call(url, "/invocations", {**payload, "stream": True}, session)
        events = sse_events(body)
        assert status == 200 and ctype.startswith("text/event-stream"), (status, ctype)
        assert all("delta" in e for e in events[:-1]) and len(events) >= 2, events
        assert "".join(e["delta"] for e in events[:-1]) == events[-1]["draft"], events
        assert events[-1]["session_turn"] == 3, events[-1]

    def fail():
        status, _, body = call(url, "/invocations", {"fail": "planned failure"}, session)
        assert status == 500 and json.loads(body) == {"error": "planned failure"}, (status, body)

    def fail_stream():
        status, _, body = call(url, "/invocations", {"fail": "mid-stream", "stream": True, "topic": "t"}, session)
        events = sse_events(body)
        assert status == 200 and events[-1].get("error") == "mid-stream", (status, events)

    def bad_json():
        status, _, _ = call(url, "/invocations", b"not json", session)
        assert status == 400, status

    def overrides():
        t0 = time.monotonic()
        out = json.loads(call(url, "/invocations", {"set_confidence": 0.4, "delay_ms": 300}, session)[2])
        assert out["confidence"] == 0.4 and time.monotonic() - t0 >= 0.3, out

    check("GET /ping answers Healthy", ping)
    check("POST /invocations: deterministic draft and confidence, session_turn counts 1, 2", invoke_twice)
    check("stream: true answers SSE deltas then the full answer", stream)
    check("fail: HTTP 500 {error}", fail)
    check("fail while streaming: HTTP 200 and a final error event", fail_stream)
    check("non-JSON body: HTTP 400", bad_json)
    check("set_confidence and delay_ms", overrides)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
