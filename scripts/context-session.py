#!/usr/bin/env python3
"""Prints an NDJSON export (this service's own format) of one session with
N messages: a system message, then alternating user and assistant turns of
about 60 tokens each, for the context-read benchmark.

    scripts/context-session.py SESSION_ID N > session.ndjson
"""
import json
import sys

session_id, count = sys.argv[1], int(sys.argv[2])
TEXT = ("Sure, here is how to reset the router: unplug it for thirty seconds, plug it back in, "
        "wait until the light turns solid green, then reconnect and open the admin page to check "
        "the firmware. Tell me what the light does.")


def at(i):
    """The i-th second of 2024, as the service writes timestamps."""
    return f"2024-01-{1 + i // 86400:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000000Z"


print(json.dumps({
    "type": "session", "id": session_id, "user_id": "ctx", "session_name": f"Context {count}",
    "is_active": True, "archived_at": None, "context": {}, "message_count": count,
    "last_message_at": at(count - 1), "created_at": at(0), "updated_at": at(count - 1),
}))
for i in range(count):
    kind = "system" if i == 0 else ("user" if i % 2 else "assistant")
    content = "You are a patient support assistant." if i == 0 else f"{i}: {TEXT}"
    print(json.dumps({
        "type": "message", "session_id": session_id, "id": f"m{i:05d}", "content": content,
        "message_type": kind, "user_id": "ctx", "metadata": {}, "created_at": at(i),
    }))
