"""Download a file (file:// or http(s)://), verify its sha256, and only then put it in place."""

from __future__ import annotations

import hashlib
import http.client
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from deploybench.atomic import atomic_path
from deploybench.errors import UserError

CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 8 << 20
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class ChecksumMismatch(UserError):
    pass


def _local_path(parsed: urllib.parse.ParseResult) -> Path:
    # file:///abs/path and, as a convenience for configs kept in a repository, file:rel/path
    # (relative to the working directory).
    path = urllib.request.url2pathname(parsed.path)
    return Path(path if parsed.netloc in ("", "localhost") else f"//{parsed.netloc}{path}")


def _open(url: str, timeout: float) -> tuple[AbstractContextManager[BinaryIO], int | None]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = _local_path(parsed)
        if not path.is_file():
            raise UserError(f"{url}: no such file {path}; fix the checkpoint url in the config")
        return path.open("rb"), path.stat().st_size
    if parsed.scheme in ("http", "https"):
        request = urllib.request.Request(url, headers={"User-Agent": "deploybench"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code != 429:  # the server answered: retrying won't help
                raise UserError(f"{url}: HTTP {err.code} {err.reason}; check the url") from err
            raise
        length = response.headers.get("Content-Length")
        return response, int(length) if length else None
    raise UserError(f"{url}: unsupported scheme {parsed.scheme!r}; use file://, http:// or https://")


def _copy(source: BinaryIO, dest: Path, total: int | None, label: str) -> str:
    digest = hashlib.sha256()
    done, next_report = 0, 0.1
    show = total is not None and total >= PROGRESS_MIN_BYTES
    with dest.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            done += len(chunk)
            if show and done / total >= next_report:
                print(f"{label}: {done / 2**20:.1f}/{total / 2**20:.1f} MiB "
                      f"({100 * done / total:.0f} %)", file=sys.stderr)
                next_report += 0.1
    if total is not None and done != total:
        raise ConnectionError(f"connection closed after {done} of {total} bytes")
    return digest.hexdigest()


def check_checkpoint(path: Path) -> None:
    """A PyTorch checkpoint in the zip format (torch >= 1.6) must open and pass its CRCs: a
    truncated file whose checksum was updated to match is named here, once, instead of failing
    every step that loads it."""
    if not zipfile.is_zipfile(path):
        if path.read_bytes()[:2] != b"\x80\x02":  # the legacy format starts with a pickle
            raise UserError(f"{path.name}: neither a zip-format nor a legacy PyTorch checkpoint "
                            "(truncated or not a checkpoint), though its sha256 matches the "
                            "config: the checksum was made from a broken file; fix the url "
                            "and sha256")
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            bad = bad and f"entry {bad} fails its CRC"
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        bad = str(err)
    if bad:
        raise UserError(f"{path.name}: the checkpoint archive is damaged ({bad}), though its "
                        "sha256 matches the config: the checksum was made from a broken file; "
                        "fix the url and sha256")


def fetch(url: str, sha256: str, out: Path | str, retries: int = 4, backoff: float = 1.0,
          timeout: float = 60.0, check: Callable[[Path], None] | None = None) -> Path:
    """Fetch `url` to `out`. The file appears only when complete, its checksum matches and
    `check` (e.g. that a checkpoint opens) accepts it."""
    out = Path(out)
    sha256 = sha256.lower()
    for attempt in range(retries + 1):
        try:
            with atomic_path(out, suffix=".part") as tmp:
                source, total = _open(url, timeout)
                with source:
                    actual = _copy(source, tmp, total, out.name)
                if actual != sha256:
                    # The partial file is removed with the temporary path; nothing is unpickled.
                    raise ChecksumMismatch(
                        f"{url}: sha256 mismatch\n  expected {sha256}\n  actual   {actual}\n"
                        "the download was deleted; update the checksum in the config only if you "
                        "trust this file")
                if check is not None:
                    check(tmp)
            return out
        except NETWORK_ERRORS as err:
            if attempt == retries:
                raise UserError(f"{url}: download failed after {retries + 1} attempts: {err}; "
                                "check the network or the url") from err
            delay = backoff * 2**attempt
            print(f"{url}: {err}; retrying in {delay:.1f} s ({attempt + 1}/{retries})",
                  file=sys.stderr)
            time.sleep(delay)
    raise AssertionError("unreachable")


def verify_fetched(expected: dict[Path, str], cache: Path) -> None:
    """Before any job runs: every fetched file that exists still has the sha256 the config gives.
    A file replaced after its fetch is named with the fix. Hashes are remembered by size and
    mtime in `cache`, so an unchanged checkpoint is read once, not on every invocation."""
    import json

    from deploybench.atomic import write_json
    from deploybench.provenance import file_sha256

    known = json.loads(cache.read_text()) if cache.is_file() else {}
    seen, changed = {}, []
    for path, sha256 in expected.items():
        if not path.is_file():
            continue
        stat = path.stat()
        key = f"{stat.st_size}:{stat.st_mtime_ns}"
        entry = known.get(str(path))
        actual = entry["sha256"] if entry and entry["stat"] == key else file_sha256(path)
        seen[str(path)] = {"stat": key, "sha256": actual}
        if actual != sha256.lower():
            changed.append(f"  {path}: sha256 {actual}, the config says {sha256.lower()}")
    if seen != {k: v for k, v in known.items() if k in seen}:
        write_json(cache, {**known, **seen})
    if changed:
        raise UserError("fetched files changed since their fetch (or the config's checksum "
                        "changed):\n" + "\n".join(changed) + "\ndelete them so that the "
                        "pipeline fetches them again, or fix the sha256 in the config")

