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
from deploybench.fetch import ChecksumMismatch, Expected, fetch

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A real HTTP server on 127.0.0.1 playing a download host: it serves `files` by path,
    honours `Range` unless `ranges` is off, and closes the first `drops` responses after a
    third of the body. `seen` records each request's path and Range header."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"/model.pth": PAYLOAD}
        self.drops = 0
        self.ranges = True
        self.seen: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                wanted = self.headers.get("Range")
                server.seen.append((self.path, wanted))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "not found")
                    return
                start = int(wanted[6:-1]) if wanted and server.ranges else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.drops > 0:
                    server.drops -= 1
                    self.wfile.write(body[start: start + len(body) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> int:
        return len(self.seen)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_file_url_absolute_and_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.pth"
    src.write_bytes(PAYLOAD)
    assert fetch(src.as_uri(), sha(PAYLOAD), tmp_path / "a" / "out.pth") == sha(PAYLOAD)
    assert (tmp_path / "a" / "out.pth").read_bytes() == PAYLOAD
    monkeypatch.chdir(tmp_path)
    fetch("file:src.pth", sha(PAYLOAD), "b.pth")
    assert (tmp_path / "b.pth").read_bytes() == PAYLOAD


def test_http_download(server: Server, tmp_path: Path, cache: Path) -> None:
    out = tmp_path / "m.pth"
    fetch(f"{server.url}/model.pth", sha(PAYLOAD), out, cache=cache)
    assert out.read_bytes() == PAYLOAD
    assert server.requests == 1


def test_a_dropped_connection_resumes_where_it_stopped(server: Server, tmp_path: Path,
                                                       cache: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    server.drops = 2
    out = tmp_path / "m.pth"
    fetch(f"{server.url}/model.pth", sha(PAYLOAD), out, backoff=0.01, cache=cache)
    assert out.read_bytes() == PAYLOAD
    third = len(PAYLOAD) // 3
    assert [r for _, r in server.seen] == [None, f"bytes={third}-", f"bytes={2 * third}-"]
    err = capsys.readouterr().err
    assert "retrying" in err and "resuming after" in err


def test_a_server_without_ranges_starts_again(server: Server, tmp_path: Path,
                                              cache: Path) -> None:
    server.drops, server.ranges = 1, False
    fetch(f"{server.url}/model.pth", sha(PAYLOAD), tmp_path / "m.pth", backoff=0.01,
          cache=cache)
    assert (tmp_path / "m.pth").read_bytes() == PAYLOAD and server.requests == 2


def test_an_interrupted_fetch_resumes_in_the_next_run(server: Server, tmp_path: Path,
                                                      cache: Path) -> None:
    server.drops = 10
    out = tmp_path / "m.pth"
    with pytest.raises(UserError, match="failed after 3 attempts.*run again to resume"):
        fetch(f"{server.url}/model.pth", sha(PAYLOAD), out, retries=2, backoff=0.01,
              cache=cache)
    assert not out.exists()  # only the cache's partial file is kept
    server.drops = 0
    fetch(f"{server.url}/model.pth", sha(PAYLOAD), out, cache=cache)
    assert out.read_bytes() == PAYLOAD
    assert server.seen[-1][1] == f"bytes={3 * (len(PAYLOAD) // 3)}-"


def test_the_cache_is_shared_between_checkouts(server: Server, tmp_path: Path,
                                               cache: Path) -> None:
    url = f"{server.url}/model.pth"
    first, second = tmp_path / "a" / "m.pth", tmp_path / "b" / "m.pth"
    fetch(url, sha(PAYLOAD), first, cache=cache)
    fetch(url, sha(PAYLOAD), second, cache=cache)
    assert server.requests == 1  # the second checkout took it from the cache
    assert second.read_bytes() == PAYLOAD
    assert first.stat().st_ino == second.stat().st_ino  # hard links, not copies
    # A cache entry damaged on disk is noticed (its content is hashed) and fetched again.
    (cache / "sha256" / sha(PAYLOAD)).unlink()
    (cache / "sha256" / sha(PAYLOAD)).write_bytes(b"damaged")
    fetch(url, sha(PAYLOAD), tmp_path / "c" / "m.pth", cache=cache)
    assert server.requests == 2 and (tmp_path / "c" / "m.pth").read_bytes() == PAYLOAD


def test_an_unusable_cache_is_named(server: Server, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(UserError, match=r"cannot write to the download cache .*/file/cache "
                                        r"\(fetch.cache, \$DEPLOYBENCH_CACHE\): Not a directory"):
        fetch(f"{server.url}/model.pth", sha(PAYLOAD), tmp_path / "m.pth",
              cache=tmp_path / "file" / "cache")
    assert server.requests == 0 and not (tmp_path / "m.pth").exists()


def test_concurrent_fetches_download_once(server: Server, tmp_path: Path, cache: Path) -> None:
    import concurrent.futures

    url = f"{server.url}/model.pth"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(lambda i: fetch(url, sha(PAYLOAD), tmp_path / f"{i}.pth",
                                                cache=cache), range(4)))
    assert digests == [sha(PAYLOAD)] * 4 and server.requests == 1


def test_wrong_checksum_over_http_deletes_file(server: Server, tmp_path: Path,
                                               cache: Path) -> None:
    with pytest.raises(ChecksumMismatch) as err:
        fetch(f"{server.url}/model.pth", "0" * 64, tmp_path / "m.pth", cache=cache)
    message = str(err.value)
    assert "expected " + "0" * 64 in message and "actual   " + sha(PAYLOAD) in message
    assert not (tmp_path / "m.pth").exists()
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing kept, not even cached
    assert server.requests == 1  # a bad checksum is not a network error: no retry


def test_http_404_is_not_retried(server: Server, tmp_path: Path, cache: Path) -> None:
    with pytest.raises(UserError, match="HTTP 404"):
        fetch(f"{server.url}/missing.pth", sha(PAYLOAD), tmp_path / "m.pth", cache=cache)
    assert server.requests == 1


def test_existing_output_survives_a_failed_fetch(tmp_path: Path) -> None:
    src = tmp_path / "src.pth"
    src.write_bytes(PAYLOAD)
    out = tmp_path / "out.pth"
    out.write_bytes(b"previous good file")
    with pytest.raises(ChecksumMismatch):
        fetch(src.as_uri(), "f" * 64, out)
    assert out.read_bytes() == b"previous good file"


def test_progress_is_one_bar_not_a_line_per_chunk(server: Server, tmp_path: Path,
                                                  cache: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(fetch_module, "PROGRESS_MIN_BYTES", 1024)
    monkeypatch.setattr(fetch_module, "CHUNK", 16 * 1024)  # 64 chunks
    fetch(f"{server.url}/model.pth", sha(PAYLOAD), tmp_path / "m.pth", cache=cache)
    err = capsys.readouterr().err
    assert "m.pth: 100%" in err and "1.00M/1.00M" in err
    assert err.count("\n") <= 2  # tqdm redraws one line (\r), at most every 5 s in a log


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
    verify_fetched({fetched: Expected(digest, "the config")}, cache)
    assert load_weights(fetched, sha256=digest)
    fetched.write_bytes(checkpoint_path("rtmdet_tiny_shapes").read_bytes())
    with pytest.raises(UserError, match=r"(?s)fetched files changed since their fetch.*fast\.pth"):
        verify_fetched({fetched: Expected(digest, "the config")}, cache)
    with pytest.raises(UserError, match="changed since it was fetched"):
        load_weights(fetched, sha256=digest)


def checkpoint_bytes(value: float) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.full((4,), value)}}, buffer)
    return buffer.getvalue()


def zoo_file(server: Server, payload: bytes, prefix: str | None = None) -> str:
    """Serve `payload` under an OpenMMLab-style name ending in its sha256's first 8 hex digits
    (or `prefix`); returns the name's path on the zoo host."""
    path = f"/mmdet/v3.0/m/m_20240101-{prefix or sha(payload)[:8]}.pth"
    server.files[path] = payload
    return path


def run_fetch(url: str, out: Path, lock: Path) -> int:
    from deploybench.cli import main

    return main(["fetch", "--url", url, "--lock", str(lock), "--out", str(out)])


def test_a_zoo_file_is_checked_by_its_name_then_locked(server: Server, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from deploybench import checksum_lock
    from deploybench.fetch import MIRROR_ENV, ZOO_HOST

    monkeypatch.setenv("DEPLOYBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(MIRROR_ENV, f"{server.url}/")  # the zoo host, played on loopback
    good, other = checkpoint_bytes(1.0), checkpoint_bytes(2.0)
    path = zoo_file(server, good)
    url, lock, out = ZOO_HOST + path[1:], tmp_path / "checkpoints.lock", tmp_path / "m.pth"
    assert run_fetch(url, out, lock) == 0
    assert server.seen == [(path, None)] and out.read_bytes() == good
    assert checksum_lock.read(lock) == {Path(path).name: sha(good)}
    assert "verified against the sha256 prefix in its name" in capsys.readouterr().out
    # Later runs verify the whole digest: a different file under the same name is refused,
    # although its name's prefix is the one the zoo published.
    server.files[path] = other
    (tmp_path / "cache").rename(tmp_path / "old-cache")
    out.unlink()
    assert run_fetch(url, out, lock) == 2
    err = capsys.readouterr().err
    assert f"expected {sha(good)} ({lock})" in err and not out.exists()
    assert checksum_lock.read(lock) == {Path(path).name: sha(good)}


def test_a_zoo_file_whose_name_does_not_match_is_refused(server: Server, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    monkeypatch.setenv("DEPLOYBENCH_CACHE", str(tmp_path / "cache"))
    path = zoo_file(server, checkpoint_bytes(1.0), prefix="0badf00d")
    lock, out = tmp_path / "checkpoints.lock", tmp_path / "m.pth"
    assert run_fetch(server.url + path, out, lock) == 2
    assert "expected 0badf00d (the sha256 prefix in its name" in capsys.readouterr().err
    assert not out.exists() and not lock.exists()
    server.files["/plain.pth"] = PAYLOAD  # no prefix, no lock entry, no sha256: nothing to check
    assert run_fetch(server.url + "/plain.pth", out, lock) == 2
    assert "set models.<name>.checkpoint.sha256" in capsys.readouterr().err
    assert [p for p, _ in server.seen] == [path]  # refused before downloading anything


def test_the_mirror_rewrites_only_the_zoo_host() -> None:
    from deploybench.fetch import ZOO_HOST, mirrored

    assert mirrored(ZOO_HOST + "mmseg/a.pth", "http://m.local/zoo") == "http://m.local/zoo/mmseg/a.pth"
    assert mirrored("https://github.com/x/a.pth", "http://m.local/") == "https://github.com/x/a.pth"
    assert mirrored(ZOO_HOST + "a.pth", "") == ZOO_HOST + "a.pth"


def test_concurrent_lock_records_keep_every_entry(tmp_path: Path) -> None:
    import concurrent.futures

    from deploybench import checksum_lock

    lock = tmp_path / "checkpoints.lock"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: checksum_lock.record(lock, f"m{i}.pth", f"{i:064x}"), range(32)))
    assert len(checksum_lock.read(lock)) == 32
    assert lock.read_text().startswith("# deploybench checksum lock")
    with pytest.raises(UserError, match="changed upstream or in transit"):
        checksum_lock.record(lock, "m1.pth", "f" * 64)
