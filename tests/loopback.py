"""A threaded HTTP server on 127.0.0.1 and a free port, for the fakes and fixtures tests start.

The fixture owns the behaviour (``handle(request, method)``); this owns the plumbing: the
handler class with logging silenced, the server and its thread, start and stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHTTP:
    def __init__(
        self,
        handle: Callable[[BaseHTTPRequestHandler, str], None],
        methods: Iterable[str] = ("GET",),
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

        for method in methods:
            setattr(Handler, f"do_{method}", lambda request, m=method: handle(request, m))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
