"""A loopback HTTP receiver for notification tests: records what it gets, fails on demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.calls = 0
        self.fail_first = 0
        self.mode = "ok"  # ok | huge | redirect | hang
        self.sent = 0  # bytes of a huge answer the client took
        self.lock = threading.Lock()
        self.url = ""

    def payloads(self, event: str | None = None) -> list[dict[str, Any]]:
        return [b for b in self.bodies if event is None or b.get("event") == event]


@contextmanager
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with rec.lock:
                rec.calls += 1
                failing = rec.calls <= rec.fail_first
                if not failing:
                    rec.bodies.append(json.loads(body))
            if failing:
                self.send_response(503)
                self.end_headers()
                return
            if rec.mode == "redirect":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.end_headers()
                return
            if rec.mode == "hang":
                release.wait(30)
                return
            self.send_response(200)
            if rec.mode == "huge":
                self.send_header("content-length", str(200 * 2**20))
                self.end_headers()
                chunk = b"x" * 2**16
                try:
                    for _ in range(200 * 16):
                        self.wfile.write(chunk)
                        rec.sent += len(chunk)
                except OSError:
                    pass
                return
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        release.set()
        server.shutdown()
        server.server_close()
