"""N appends and N session reads over one keep-alive connection, for
scripts/bench-limits.sh: python3 scripts/bench-limits.py PORT N."""
import http.client
import json
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)


def request(method, path, body=None):
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


status, created = request("POST", "/api/chat/sessions", {"user_id": "bench"})
assert status == 201, status
session = json.loads(created)["id"]
for i in range(n):
    status, _ = request("POST", f"/api/chat/sessions/{session}/messages?user_id=bench",
                        {"content": f"hello {i}", "message_type": "user"})
    assert status == 201, status
    status, _ = request("GET", f"/api/chat/sessions/{session}?user_id=bench&messages_limit=20")
    assert status == 200, status
