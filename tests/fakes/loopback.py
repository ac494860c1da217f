"""What the loopback fakes share: a threaded HTTP server on 127.0.0.1 (a free port), started and
stopped with the fake, usable as a context manager, and a log of the requests it answered."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # bursts of concurrent connections must not overflow the listen backlog
    daemon_threads = True


class LoopbackFake:
    """Mixed into the fakes (dataclasses holding `lock`, `server` and `requests`)."""

    lock: threading.Lock
    server: ThreadingHTTPServer | None
    requests: list[tuple[float, int, str | None]]

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _serve(self, handler: type[BaseHTTPRequestHandler]):
        self.server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _log(self, status: int, key: str | None) -> None:
        with self.lock:
            self.requests.append((time.time(), status, key))
