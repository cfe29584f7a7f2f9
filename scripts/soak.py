#!/usr/bin/env python3
"""Mixed load for the soak (scripts/soak.sh runs it; standard library only).

Workers, each a user with its own keep-alive connection, send requests at a
fixed total rate: read a session (50 %), append a message (30 %), list the
user's sessions (15 %), start a new session (5 %). Each worker keeps a ring of
its newest sessions; starting one beyond the ring deletes the oldest, so the
working set (and the data) stays the same size over the run and growth of
the server's memory means a leak, not more data.

Every INTERVAL seconds it prints and records one line: requests, p50/p99/max
latency of that interval, errors, and the resident memory (VmRSS) of the
processes given with --pid. Latency runs from the time a request was due, so
a stalled server shows up in the figures instead of slowing the load down.
Any answer other than the expected status is an error; the first few are
printed. Exit status 1 when there was any error.
"""

import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse

OPS = [("read", 50), ("append", 30), ("list", 15), ("new", 5)]
EXPECTED = {"read": 200, "append": 201, "list": 200, "new": 201, "delete": 204}
CONTENT = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, "
    "quis nostrud exercitation ullamco laboris."
)


class Stats:
    """What the workers measured since the last sample."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.errors = 0
        self.total_errors = 0
        self.shown = 0
        self.ops = {}

    def record(self, op, seconds, ok, detail):
        with self.lock:
            self.latencies.append(seconds)
            self.ops[op] = self.ops.get(op, 0) + 1
            if not ok:
                self.errors += 1
                self.total_errors += 1
                if self.shown < 10:
                    self.shown += 1
                    print(f"error: {op}: {detail}", file=sys.stderr, flush=True)

    def take(self):
        with self.lock:
            out = (self.latencies, self.errors)
            self.latencies, self.errors = [], 0
            return out


class Worker(threading.Thread):
    def __init__(self, n, args, stats, start_at, stop):
        super().__init__(daemon=True)
        self.n, self.args, self.stats, self.stop = n, args, stats, stop
        self.user = f"soak-{args.tag}-{n}"
        self.rng = random.Random(args.seed * 1000 + n)
        self.ring = []
        self.made = 0
        self.period = args.workers / args.rate
        # Spread the workers' first requests over one period.
        self.due = start_at + self.period * n / args.workers
        url = urllib.parse.urlsplit(args.base)
        self.host, self.port = url.hostname, url.port
        self.conn = None

    def request(self, method, path, body=None):
        """One request on the keep-alive connection (reopened after a failure)."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                headers = {"content-type": "application/json"} if body is not None else {}
                data = json.dumps(body) if body is not None else None
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: a client
                # retries that on a new one; anything else is an error.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def timed(self, op, method, path, body=None):
        due = self.due
        try:
            status, data = self.request(method, path, body)
            ok = status == EXPECTED[op]
            detail = f"{method} {path} -> {status} {data[:200]!r}"
        except Exception as e:  # noqa: BLE001 - every failure is an error to count
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            ok, data, detail = False, b"", f"{method} {path} -> {e!r}"
        self.stats.record(op, time.monotonic() - due, ok, detail)
        return ok

    def q(self):
        return f"user_id={self.user}"

    def new_session(self):
        self.made += 1
        sid = f"soak-{self.args.tag}-{self.n}-{self.made}"
        body = {"id": sid, "session_name": f"Soak {self.made}", "context": {"n": self.made}}
        if self.timed("new", "POST", f"/api/chat/sessions?{self.q()}", body):
            self.ring.append(sid)
        if len(self.ring) > self.args.ring:
            old = self.ring.pop(0)
            self.due = time.monotonic()
            self.timed("delete", "DELETE", f"/api/chat/sessions/{old}?{self.q()}")

    def run(self):
        while len(self.ring) < self.args.ring and not self.stop.is_set():
            self.due = time.monotonic()
            self.new_session()
        names = [name for name, _ in OPS]
        weights = [w for _, w in OPS]
        while not self.stop.is_set():
            now = time.monotonic()
            if self.due > now:
                time.sleep(self.due - now)
            op = self.rng.choices(names, weights)[0]
            sid = self.rng.choice(self.ring) if self.ring else None
            if op == "new" or sid is None:
                self.new_session()
            elif op == "read":
                self.timed("read", "GET", f"/api/chat/sessions/{sid}?{self.q()}")
            elif op == "append":
                kind = self.rng.choice(["user", "assistant"])
                body = {"content": CONTENT, "message_type": kind, "metadata": {"w": self.n}}
                self.timed("append", "POST", f"/api/chat/sessions/{sid}/messages?{self.q()}", body)
            else:
                self.timed("list", "GET", f"/api/chat/sessions?{self.q()}&limit=20")
            self.due += self.period


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def pct(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--pid", action="append", default=[], help="NAME=PID whose VmRSS to sample")
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--interval", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=60, help="seconds before the reference RSS")
    ap.add_argument("--rate", type=float, default=200, help="requests per second, all workers")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--ring", type=int, default=10, help="sessions each worker keeps")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tag", default=str(int(time.time())), help="makes ids unique per run")
    ap.add_argument("--csv", help="write the samples here")
    args = ap.parse_args()
    pids = [p.split("=", 1) for p in args.pid]

    stats, stop = Stats(), threading.Event()
    start = time.monotonic()
    workers = [Worker(n, args, stats, start, stop) for n in range(args.workers)]
    for w in workers:
        w.start()

    header = ["t_s", "requests", "req_per_s", "p50_ms", "p99_ms", "max_ms", "errors"] + [
        f"rss_{name}_kib" for name, _ in pids
    ]
    rows = []
    print("  ".join(f"{h:>10}" for h in header), flush=True)
    next_sample = start + args.interval
    while True:
        time.sleep(max(0.0, next_sample - time.monotonic()))
        now = time.monotonic()
        latencies, errors = stats.take()
        latencies.sort()
        row = [
            round(now - start),
            len(latencies),
            round(len(latencies) / args.interval, 1),
            round(pct(latencies, 0.50) * 1000, 1),
            round(pct(latencies, 0.99) * 1000, 1),
            round((latencies[-1] if latencies else 0) * 1000, 1),
            errors,
        ] + [rss_kib(pid) for _, pid in pids]
        rows.append(row)
        print("  ".join(f"{v:>10}" for v in row), flush=True)
        next_sample += args.interval
        if now - start >= args.duration:
            break
    stop.set()
    for w in workers:
        w.join(timeout=35)

    if args.csv:
        with open(args.csv, "w") as f:
            f.write(",".join(header) + "\n")
            for row in rows:
                f.write(",".join(str(v) for v in row) + "\n")

    total = sum(r[1] for r in rows)
    p99s = [r[4] for r in rows]
    print(f"\nrequests {total} in {rows[-1][0]} s ({total / rows[-1][0]:.0f}/s); by operation: {stats.ops}")
    print(
        f"p99 per {args.interval:g} s interval: min {min(p99s)} ms, median {statistics.median(p99s)} ms, "
        f"max {max(p99s)} ms; worst single request {max(r[5] for r in rows)} ms"
    )
    for i, (name, _) in enumerate(pids):
        col = 7 + i
        ref = next((r for r in rows if r[0] >= args.warmup), rows[0])
        first, end = rows[0][col], rows[-1][col]
        change = (end - ref[col]) / ref[col] * 100 if ref[col] > 0 else float("nan")
        print(
            f"RSS {name}: first sample {first} KiB, at {ref[0]} s (after warm-up) {ref[col]} KiB, "
            f"end {end} KiB ({change:+.1f} % since warm-up), max {max(r[col] for r in rows)} KiB"
        )
    print(f"errors: {stats.total_errors}")
    return 1 if stats.total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
