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


class Catcher(LoopbackFake):
    """Where a misconfigured provider host redirects to: records every request it gets (method,
    path, headers) and answers each like a success of both providers (200 JSON with a `sid`, an
    `X-Message-Id`), so that a client that follows the redirect would record `sent`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.requests: list[tuple[float, int, str | None]] = []
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)

    def authorizations(self) -> list[str]:
        with self.lock:
            return [h["authorization"] for _, _, h in self.seen if "authorization" in h]

    def start(self) -> Catcher:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with fake.lock:
                    fake.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                fake._log(200, None)
                data = b'{"sid": "SMcaught", "status": "queued"}'
                self.send_response(200)
                self.send_header("X-Message-Id", "caught-by-the-redirect-target")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _any

        return self._serve(Handler)
