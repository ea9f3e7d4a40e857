"""A real HTTP server on 127.0.0.1 that plays the model zoo's download host for `fetch.mirror`:
any path is answered with the file of the same name in its directory, with byte ranges."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path


class ZooHost:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[str] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                host.requests.append(self.path)
                path = host.directory / Path(self.path).name
                if not path.is_file():
                    self.send_error(404, "not found")
                    return
                body = path.read_bytes()
                wanted = self.headers.get("Range")
                start = int(wanted[6:-1]) if wanted else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
