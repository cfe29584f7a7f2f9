#!/usr/bin/env python3
"""A minimal OTLP/HTTP receiver for benchmarks: answers every POST to
/v1/traces, /v1/metrics and /v1/logs with 200 and an empty body (an empty
protobuf answer), and on SIGTERM prints how many requests and bytes of each
signal it got. It decodes nothing: it stands for a collector that keeps up.

    scripts/otlp-sink.py 4318 &      # then OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
"""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length)
        count, size = received.get(self.path, (0, 0))
        received[self.path] = (count + 1, size + len(body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def report(*_):
    for path, (count, size) in sorted(received.items()):
        print(f"otlp-sink {path}: {count} requests, {size} bytes", file=sys.stderr)
    sys.exit(0)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    signal.signal(signal.SIGTERM, report)
    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
