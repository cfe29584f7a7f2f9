"""Bytes written to disk per append, for scripts/bench-writes.sh.

Appends messages of a fixed size to the server at --base, first one after
the other to one session, then from several workers at once, each to a
session of its own, and reads the server's /proc/<pid>/io around each run:
`write_bytes` (what the process sent to the disk's page cache: the WAL, and
the database file once checkpointed) and `wchar` (what it passed to
write()). Each run is followed by a quiet moment, so that the checkpoint
that copies the WAL into the database file is counted too, and ends with the
sizes of the database file and of its WAL.
"""

import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse

WORDS = (
    "the quick brown fox jumps over a lazy dog while models answer questions "
    "about invoices meetings travel plans recipes code reviews and weather "
    "forecasts with citations summaries tables lists and friendly closing notes"
).split()


def content(i, size):
    """A message of `size` bytes of words, a little different each time."""
    out, k = [], i
    while sum(len(w) + 1 for w in out) < size:
        out.append(WORDS[k % len(WORDS)])
        k = k * 7 + 3
    return " ".join(out)[:size]


class Client:
    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port)

    def post(self, path, body):
        self.conn.request(
            "POST", path, json.dumps(body), {"content-type": "application/json"}
        )
        answer = self.conn.getresponse()
        data = answer.read()
        if answer.status not in (200, 201):
            raise SystemExit(f"POST {path}: {answer.status} {data[:200]!r}")
        return json.loads(data)


def io_counters(pid):
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def sizes(data_dir):
    out = {}
    for name in ("chat-sessions.sqlite3", "chat-sessions.sqlite3-wal"):
        try:
            out[name] = os.stat(os.path.join(data_dir, name)).st_size
        except FileNotFoundError:
            out[name] = 0
    return out


def appends(base, sessions, per_session, size, offset):
    """Each session gets `per_session` appends from a worker of its own."""

    def worker(user, sid):
        client = Client(base)
        for n in range(per_session):
            client.post(
                f"/api/chat/sessions/{sid}/messages?user_id={user}",
                {"content": content(offset + n, size), "message_type": "user"},
            )

    threads = [threading.Thread(target=worker, args=s) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure(args, name, workers):
    client = Client(args.base)
    sessions = []
    for w in range(workers):
        user = f"{name}{w}"
        made = client.post("/api/chat/sessions", {"user_id": user})
        sessions.append((user, made["id"]))
    time.sleep(args.quiet)
    per = max(1, args.appends // workers)
    total = per * workers
    before = io_counters(args.pid)
    started = time.monotonic()
    appends(args.base, sessions, per, args.size, workers * 1000)
    took = time.monotonic() - started
    after_run = io_counters(args.pid)
    files_after_run = sizes(args.data_dir)
    time.sleep(args.quiet)
    after_quiet = io_counters(args.pid)
    files = sizes(args.data_dir)

    def per_append(a, b, key):
        return (b[key] - a[key]) / total

    print(
        f"{name:<11} {total:>6} appends of {args.size} B from {workers:>2} worker(s), "
        f"{total / took:8.0f}/s: write_bytes {per_append(before, after_run, 'write_bytes') / 1024:6.1f} KiB "
        f"per append during the run, {per_append(before, after_quiet, 'write_bytes') / 1024:6.1f} KiB "
        f"with the checkpoint after it; wchar {per_append(before, after_quiet, 'wchar') / 1024:6.1f} KiB"
    )
    print(
        f"{'':<11} files: database {files['chat-sessions.sqlite3'] / 2**20:.1f} MiB, "
        f"WAL {files_after_run['chat-sessions.sqlite3-wal'] / 2**20:.1f} MiB at the end of the run, "
        f"{files['chat-sessions.sqlite3-wal'] / 2**20:.1f} MiB after {args.quiet} s quiet"
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--appends", type=int, default=3000)
    p.add_argument("--size", type=int, default=600)
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--quiet", type=float, default=3.0)
    args = p.parse_args()
    measure(args, "sequential", 1)
    measure(args, "concurrent", args.workers)


if __name__ == "__main__":
    main()
