"""fetch: file:// and http:// sources, sha256 checks, retries, atomic output."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploybench import fetch as fetch_module
from deploybench.errors import UserError
from deploybench.fetch import ChecksumMismatch, fetch

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A real HTTP server on 127.0.0.1 whose first `drops` responses close mid-body."""

    def __init__(self) -> None:
        self.drops = 0
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                server.requests += 1
                if self.path != "/model.pth":
                    self.send_error(404, "not found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                if server.drops > 0:
                    server.drops -= 1
                    self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(PAYLOAD)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def test_file_url_absolute_and_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.pth"
    src.write_bytes(PAYLOAD)
    out = fetch(src.as_uri(), sha(PAYLOAD), tmp_path / "a" / "out.pth")
    assert out.read_bytes() == PAYLOAD
    monkeypatch.chdir(tmp_path)
    assert fetch("file:src.pth", sha(PAYLOAD), "b.pth").read_bytes() == PAYLOAD


def test_http_download(server: Server, tmp_path: Path) -> None:
    out = fetch(f"{server.url}/model.pth", sha(PAYLOAD), tmp_path / "m.pth")
    assert out.read_bytes() == PAYLOAD
    assert server.requests == 1


def test_dropped_connection_is_retried(server: Server, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    server.drops = 2
    out = fetch(f"{server.url}/model.pth", sha(PAYLOAD), tmp_path / "m.pth", backoff=0.01)
    assert out.read_bytes() == PAYLOAD
    assert server.requests == 3
    assert "retrying" in capsys.readouterr().err


def test_gives_up_after_retries(server: Server, tmp_path: Path) -> None:
    server.drops = 10
    with pytest.raises(UserError, match="failed after 3 attempts"):
        fetch(f"{server.url}/model.pth", sha(PAYLOAD), tmp_path / "m.pth", retries=2,
              backoff=0.01)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_wrong_checksum_over_http_deletes_file(server: Server, tmp_path: Path) -> None:
    with pytest.raises(ChecksumMismatch) as err:
        fetch(f"{server.url}/model.pth", "0" * 64, tmp_path / "m.pth")
    message = str(err.value)
    assert "expected " + "0" * 64 in message and "actual   " + sha(PAYLOAD) in message
    assert list(tmp_path.iterdir()) == []
    assert server.requests == 1  # a bad checksum is not a network error: no retry


def test_http_404_is_not_retried(server: Server, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="HTTP 404"):
        fetch(f"{server.url}/missing.pth", sha(PAYLOAD), tmp_path / "m.pth")
    assert server.requests == 1


def test_existing_output_survives_a_failed_fetch(tmp_path: Path) -> None:
    src = tmp_path / "src.pth"
    src.write_bytes(PAYLOAD)
    out = tmp_path / "out.pth"
    out.write_bytes(b"previous good file")
    with pytest.raises(ChecksumMismatch):
        fetch(src.as_uri(), "f" * 64, out)
    assert out.read_bytes() == b"previous good file"


def test_progress_for_large_files(server: Server, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(fetch_module, "PROGRESS_MIN_BYTES", 1024)
    monkeypatch.setattr(fetch_module, "CHUNK", 64 * 1024)
    fetch(f"{server.url}/model.pth", sha(PAYLOAD), tmp_path / "m.pth")
    lines = [line for line in capsys.readouterr().err.splitlines() if "MiB" in line]
    assert len(lines) >= 5 and lines[-1].endswith("(100 %)")


def test_missing_file_and_bad_scheme(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        fetch((tmp_path / "nope.pth").as_uri(), "0" * 64, tmp_path / "x.pth")
    with pytest.raises(UserError, match="unsupported scheme 'ftp'"):
        fetch("ftp://example.invalid/x", "0" * 64, tmp_path / "x.pth")


def test_a_broken_checkpoint_is_named_at_fetch(tmp_path: Path) -> None:
    """A truncated (or corrupted) checkpoint whose checksum was made from the broken file: one
    clear error at fetch, and nothing in place, instead of a traceback in every step."""
    from deploybench.fetch import check_checkpoint

    from .conftest import checkpoint_path

    good = checkpoint_path("fast_scnn_shapes").read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good[: len(good) // 2])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(bytes(flipped))
    for source, why in ((truncated, "neither a zip-format"), (corrupt, "fails its CRC")):
        out = tmp_path / "resources" / source.name
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        with pytest.raises(UserError, match=why):
            fetch(source.as_uri(), digest, out, check=check_checkpoint)
        assert not out.exists() and not list(out.parent.glob("*.part"))
    fetch(checkpoint_path("fast_scnn_shapes").as_uri(), hashlib.sha256(good).hexdigest(),
          tmp_path / "ok.pth", check=check_checkpoint)


def test_a_checkpoint_swapped_after_fetch_is_refused(tmp_path: Path) -> None:
    """Checked twice: by the Snakefile before any job (remembered by size and mtime), and
    where the checkpoint is loaded, on the bytes that are loaded."""
    from deploybench.fetch import verify_fetched
    from deploybench.models.loading import load_weights

    from .conftest import checkpoint_path

    source = checkpoint_path("fast_scnn_shapes")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    fetched = tmp_path / "fast.pth"
    fetched.write_bytes(source.read_bytes())
    cache = tmp_path / ".verified.json"
    verify_fetched({fetched: digest}, cache)
    assert load_weights(fetched, sha256=digest)
    fetched.write_bytes(checkpoint_path("rtmdet_tiny_shapes").read_bytes())
    with pytest.raises(UserError, match=r"(?s)fetched files changed since their fetch.*fast\.pth"):
        verify_fetched({fetched: digest}, cache)
    with pytest.raises(UserError, match="changed since it was fetched"):
        load_weights(fetched, sha256=digest)
