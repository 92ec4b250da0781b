"""A deterministic "writer" agent served with the AgentCore Runtime contract, for local runs and tests.

Built on the PyPI package `bedrock-agentcore` (`BedrockAgentCoreApp`), so it answers exactly like
an agent deployed to AgentCore Runtime: `POST /invocations` (JSON in, JSON or SSE out), `GET /ping`,
session id in the header `x-amzn-bedrock-agentcore-runtime-session-id`.

Run:  localstack/.venv-agent/bin/python localstack/agent/agent.py [--port 4630] [--host 127.0.0.1]

Answer to any JSON payload (object, array, string, number):

    {"draft": "<text built from the payload>", "confidence": 0.55..0.95,
     "session_turn": <invocations seen for this session id, starting at 1>, "session_id": "<id or null>"}

- `draft`: for an object with `topic` and/or `notes`, "Draft on <topic>: (1) <note> (2) <note> ...";
  for anything else, "Draft from payload: <canonical JSON>". Capped at 2000 characters.
- `confidence`: 0.55 + 0.40 * (first 8 hex digits of sha256(canonical JSON) / 0xffffffff), rounded
  to 3 places. Canonical JSON = sorted keys, no spaces, with the control keys below removed, so the
  same payload always gets the same number, streamed or not. Print it for a payload with
  `agent.py --confidence '<json>'`.
- `session_turn` is counted in memory per session id (a payload without the header counts under
  null); it restarts with the process.

Control keys (only when the payload is an object):
- `"stream": true`: answer as SSE: one `{"delta": "<words>"}` event per few words of the draft,
  then one last event that is the complete answer above.
- `"fail": "message"`: raise `RuntimeError(message)`: HTTP 500 `{"error": "message"}`, or, when
  streaming, HTTP 200 with a final `{"error", "error_type", "message"}` event after the first delta.
- `"set_confidence": 0.4`: use this confidence instead of the hash (tests of `when` branches).
- `"delay_ms": 1500`: sleep before answering (at most 600000), to exercise timeouts and heartbeats.
"""

import argparse
import hashlib
import json
import sys
import threading
import time

from bedrock_agentcore.runtime import BedrockAgentCoreApp

CONTROL_KEYS = ("stream", "fail", "set_confidence", "delay_ms")
MAX_DRAFT = 2000
WORDS_PER_DELTA = 4

app = BedrockAgentCoreApp()
_turns: dict = {}
_turns_lock = threading.Lock()


def canonical(payload) -> str:
    """The payload without control keys, as canonical JSON (the input of the hash and the draft)."""
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k not in CONTROL_KEYS}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def confidence_of(payload) -> float:
    if isinstance(payload, dict) and isinstance(payload.get("set_confidence"), (int, float)):
        return min(1.0, max(0.0, float(payload["set_confidence"])))
    digest = hashlib.sha256(canonical(payload).encode("utf-8")).hexdigest()
    return round(0.55 + 0.40 * int(digest[:8], 16) / 0xFFFFFFFF, 3)


def _note_text(note) -> str:
    return note if isinstance(note, str) else json.dumps(note, sort_keys=True, separators=(",", ":"))


def draft_of(payload) -> str:
    if isinstance(payload, dict) and ("topic" in payload or "notes" in payload):
        topic = _note_text(payload.get("topic", "untitled"))
        notes = payload.get("notes", [])
        notes = notes if isinstance(notes, list) else [notes]
        parts = [f"({i}) {_note_text(n)}" for i, n in enumerate(notes, start=1)]
        text = f"Draft on {topic}:" + ("" if not parts else " " + " ".join(parts))
    else:
        text = "Draft from payload: " + canonical(payload)
    return text[:MAX_DRAFT]


def next_turn(session_id) -> int:
    with _turns_lock:
        _turns[session_id] = _turns.get(session_id, 0) + 1
        return _turns[session_id]


def _stream(answer: dict, fail):
    words = answer["draft"].split(" ")
    for i in range(0, len(words), WORDS_PER_DELTA):
        chunk = " ".join(words[i : i + WORDS_PER_DELTA])
        yield {"delta": chunk if i == 0 else " " + chunk}
        if fail is not None:
            raise RuntimeError(str(fail))
    yield answer


@app.entrypoint
def invoke(payload, context):
    """The writer: deterministic draft and confidence, per-session turn counter."""
    session_id = getattr(context, "session_id", None)
    turn = next_turn(session_id)
    control = payload if isinstance(payload, dict) else {}
    delay = control.get("delay_ms")
    if isinstance(delay, (int, float)) and delay > 0:
        time.sleep(min(float(delay), 600_000) / 1000)
    answer = {
        "draft": draft_of(payload),
        "confidence": confidence_of(payload),
        "session_turn": turn,
        "session_id": session_id,
    }
    fail = control.get("fail")
    if control.get("stream") is True:
        return _stream(answer, fail)
    if fail is not None:
        raise RuntimeError(str(fail))
    return answer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Deterministic writer agent (AgentCore Runtime contract)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4630, help="port to serve on (default 4630)")
    parser.add_argument("--confidence", metavar="JSON", help="print the confidence for a payload and exit")
    args = parser.parse_args(argv)
    if args.confidence is not None:
        print(confidence_of(json.loads(args.confidence)))
        return 0
    # host passed explicitly: the library would pick 0.0.0.0 when it thinks it runs in a container
    app.run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
