"""A local HTTP server for ``taskgraph data fetch`` tests (no network here): serves a folder, honours
``Range`` (so a download can resume), and can cut a file short (``/truncated/NAME``: the full
``Content-Length``, half the body, then the connection closes), as a broken transfer does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    folder: Path
    requests: list[tuple[str, str | None]]

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.requests.append((self.path, self.headers.get("Range")))
        truncated = self.path.startswith("/truncated/")
        name = self.path.removeprefix("/truncated/").lstrip("/")
        path = self.folder / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        ranged = self.headers.get("Range")
        if ranged and ranged.startswith("bytes=") and not truncated:
            start = int(ranged[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        body = data[start:]
        self.wfile.write(body[: len(body) // 2] if truncated else body)
        if truncated:
            self.close_connection = True


@contextmanager
def serve(folder: Path) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """``(base URL, requests seen)`` while a server in a thread serves ``folder``."""
    handler = type("Handler", (_Handler,), {"folder": folder, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()
