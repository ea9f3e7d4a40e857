"""Download a file (file:// or http(s)://), verify its sha256, and only then put it in place.

Zoo checkpoints run to hundreds of MB, so an HTTP download
- shows one progress bar (tqdm; in a log file it updates every few seconds, not per chunk);
- resumes where it stopped (`Range`), after a dropped connection and in the next invocation:
  the partial file waits in the cache;
- lands in a cache shared between checkouts (`$DEPLOYBENCH_CACHE`, default
  `~/.cache/deploybench`), content-addressed by sha256, and is hard-linked (or copied) from
  there, so no file is downloaded twice.
pooch, the obvious library, resumes nothing, reads no file:// URLs and checks only a whole
digest, not the 8-hex prefix of an OpenMMLab file name: this stays on urllib, with tqdm.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploybench.artifact_integrity import file_sha256
from deploybench.atomic import atomic_path
from deploybench.errors import UserError

CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 8 << 20
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)
CACHE_ENV = "DEPLOYBENCH_CACHE"
# `fetch.mirror`: where the OpenMMLab download host's files are fetched from instead.
MIRROR_ENV = "DEPLOYBENCH_MIRROR"
ZOO_HOST = "https://download.openmmlab.com/"
CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


class ChecksumMismatch(UserError):
    pass


@dataclass(frozen=True)
class Expected:
    """What the file's digest must be: the whole sha256 (from the config or the lock file),
    only the 8-hex prefix an OpenMMLab file name carries (a zoo file not yet locked), or
    another algorithm's published digest (COCO's archives: md5)."""

    digest: str
    source: str  # where the digest comes from, for the error message
    algorithm: str = "sha256"

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", self.digest.lower())

    @property
    def whole(self) -> bool:
        return len(self.digest) == 2 * hashlib.new(self.algorithm).digest_size

    def matches(self, digest: str) -> bool:
        """`digest`: the file's, in this algorithm."""
        return digest.startswith(self.digest)


def file_digests(path: Path, algorithms: set[str]) -> dict[str, str]:
    """The file's digest in each algorithm, in one read."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def export_settings(settings: dict[str, str | None]) -> None:
    """The config's `fetch.mirror` and `fetch.cache` for the fetch jobs. They say where a file
    comes from and waits, not what it is (its checksum says that), so they reach the jobs
    through the environment: changing them reruns nothing."""
    for key, env in (("mirror", MIRROR_ENV), ("cache", CACHE_ENV)):
        if settings.get(key):
            os.environ[env] = str(Path(settings[key]).resolve()) if key == "cache" \
                else str(settings[key])


def default_cache() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deploybench"


def mirrored(url: str, mirror: str | None = None) -> str:
    """`url` with the zoo host's prefix replaced by the mirror's (`$DEPLOYBENCH_MIRROR`)."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    if mirror and url.startswith(ZOO_HOST):
        return mirror.rstrip("/") + "/" + url[len(ZOO_HOST):]
    return url


def _local_path(parsed: urllib.parse.ParseResult) -> Path:
    # file:///abs/path and, as a convenience for configs kept in a repository, file:rel/path
    # (relative to the working directory).
    path = urllib.request.url2pathname(parsed.path)
    return Path(path if parsed.netloc in ("", "localhost") else f"//{parsed.netloc}{path}")


def _progress(total: int | None, done: int, label: str):  # noqa: ANN202 - a tqdm bar
    from tqdm import tqdm

    # In a log file (not a terminal) one update every few seconds is enough.
    interval = 0.1 if sys.stderr.isatty() else 5.0
    return tqdm(total=total, initial=done, desc=label, unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, mininterval=interval, maxinterval=60,
                disable=total is not None and total < PROGRESS_MIN_BYTES)


def _stream(source, part: Path, start: int, total: int | None, label: str) -> None:  # noqa: ANN001
    with part.open("r+b" if start else "wb") as out, _progress(total, start, label) as bar:
        out.seek(start)
        out.truncate()
        done = start
        while chunk := source.read(CHUNK):
            out.write(chunk)
            done += len(chunk)
            bar.update(len(chunk))
    if total is not None and done != total:
        raise ConnectionError(f"connection closed after {done} of {total} bytes")


def _copy_local(url: str, part: Path, label: str) -> None:
    path = _local_path(urllib.parse.urlparse(url))
    if not path.is_file():
        raise UserError(f"{url}: no such file {path}; fix the checkpoint url in the config")
    with path.open("rb") as source:
        _stream(source, part, 0, path.stat().st_size, label)


def _download(url: str, part: Path, timeout: float, label: str) -> None:
    """Fetch `url` into `part`, continuing after the bytes already there where the server
    sends ranges; a server that does not, or sends an unusable range, starts from zero."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "deploybench"} | ({"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing after what we have: the checksum decides
            return
        if err.code < 500 and err.code != 429:  # the server answered: retrying won't help
            raise UserError(f"{url}: HTTP {err.code} {err.reason}; check the url") from err
        raise
    with response:
        start = 0
        if response.status == 206:
            match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) > have:
                part.unlink(missing_ok=True)
                raise ConnectionError("the server sent an unusable range; starting again")
            start = int(match.group(1))  # a server may resend a little before `have`
            print(f"{label}: resuming after {start / 2**20:.1f} MiB", file=sys.stderr)
        length = response.headers.get("Content-Length")
        _stream(response, part, start, start + int(length) if length else None, label)


class Cache:
    """Content-addressed: `sha256/<digest>`; partial downloads wait in `partial/`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def partial(self, url: str) -> Path:
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        name = Path(urllib.parse.urlparse(url).path).name or "download"
        return self.root / "partial" / f"{key}-{name}.part"

    def find(self, expected: Expected) -> tuple[Path, str] | None:
        """A cached file whose content (hashed now, not trusted from its name) matches; and
        its sha256. Files are named by their sha256, linked by other algorithms' digests."""
        for path in sorted((self.root / expected.algorithm).glob(f"{expected.digest}*")):
            actual = file_digests(path, {expected.algorithm, "sha256"})
            if actual[expected.algorithm] == path.name and expected.matches(path.name):
                return path, actual["sha256"]
            path.unlink(missing_ok=True)  # damaged in the cache: fetch it again
        return None

    def add(self, part: Path, digests: dict[str, str]) -> Path:
        target = self.root / "sha256" / digests["sha256"]
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        for algorithm, digest in digests.items():
            alias = self.root / algorithm / digest
            if algorithm != "sha256" and not alias.exists():
                alias.parent.mkdir(parents=True, exist_ok=True)
                os.link(target, alias)
        return target


def _place(source: Path, out: Path) -> None:
    """`out` becomes a hard link to the cached file (a copy across file systems), atomically."""
    with atomic_path(out, suffix=".part") as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _verify(part: Path, url: str, expected: Expected,
            check: Callable[[Path], None] | None) -> dict[str, str]:
    digests = file_digests(part, {"sha256", expected.algorithm})
    actual = digests[expected.algorithm]
    if not expected.matches(actual):
        part.unlink(missing_ok=True)  # nothing is kept, nothing is unpickled
        raise ChecksumMismatch(
            f"{url}: {expected.algorithm} mismatch\n  expected {expected.digest} "
            f"({expected.source})\n  actual   {actual}\nthe download was deleted; change "
            f"{expected.source} only if you trust this file")
    if check is not None:
        try:
            check(part)
        except UserError as err:
            part.unlink(missing_ok=True)
            raise UserError(f"{url}: {err}") from None
    return digests


def fetch(url: str, expected: Expected | str, out: Path | str, retries: int = 4,
          backoff: float = 1.0, timeout: float = 60.0, cache: Path | None = None,
          check: Callable[[Path], None] | None = None,
          verified: Callable[[str], None] | None = None) -> str:
    """Fetch `url` to `out`; returns its sha256. The file appears only when complete, its
    checksum matches, `check` (e.g. that a checkpoint opens) accepts it and `verified` (e.g.
    recording it in the lock file) has run. HTTP downloads go through `cache`."""
    out = Path(out)
    if isinstance(expected, str):
        expected = Expected(expected, "the config's sha256")
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("file", "http", "https"):
        raise UserError(f"{url}: unsupported scheme {scheme!r}; use file://, http:// or https://")
    store = Cache(cache) if cache is not None and scheme != "file" else None
    part = store.partial(url) if store else out.parent / f".{out.name}.part"
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        part.touch()
    except OSError as err:
        where = (f"the download cache {cache} (fetch.cache, ${CACHE_ENV})" if store
                 else f"{out.parent}")
        raise UserError(f"cannot write to {where}: {err.strerror}; point it at a writable "
                        "directory") from err
    with part.open("ab") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one download per file; others wait, then hit
        hit = store.find(expected) if store else None
        if hit is None:
            for attempt in range(retries + 1):
                try:
                    if scheme == "file":
                        _copy_local(url, part, out.name)
                    else:
                        _download(url, part, timeout, out.name)
                    break
                except NETWORK_ERRORS as err:
                    if attempt == retries:
                        raise UserError(f"{url}: download failed after {retries + 1} attempts: "
                                        f"{err}; check the network or the url (run again to "
                                        "resume)") from err
                    delay = backoff * 2**attempt
                    print(f"{url}: {err}; retrying in {delay:.1f} s ({attempt + 1}/{retries})",
                          file=sys.stderr)
                    time.sleep(delay)
            digests = _verify(part, url, expected, check)
            actual = digests["sha256"]
            source = store.add(part, digests) if store else part
        else:
            source, actual = hit
            print(f"{out.name}: found in the cache {source.parent}", file=sys.stderr)
            if part.is_file() and part.stat().st_size == 0:
                part.unlink(missing_ok=True)  # opened only to wait for the lock
            if check is not None:
                check(source)
        if verified is not None:
            verified(actual)
        if store:
            _place(source, out)
        else:
            os.replace(source, out)
    return actual


def check_checkpoint(path: Path) -> None:
    """A PyTorch checkpoint in the zip format (torch >= 1.6) must open and pass its CRCs: a
    truncated file whose checksum was updated to match is named here, once, instead of failing
    every step that loads it."""
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            legacy = f.read(2) == b"\x80\x02"  # the legacy format starts with a pickle
        if not legacy:
            raise UserError("neither a zip-format nor a legacy PyTorch checkpoint (truncated "
                            "or not a checkpoint), though its sha256 matches: the checksum was "
                            "made from a broken file; fix the url and sha256")
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            bad = bad and f"entry {bad} fails its CRC"
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        bad = str(err)
    if bad:
        raise UserError(f"the checkpoint archive is damaged ({bad}), though its sha256 "
                        "matches: the checksum was made from a broken file; fix the url and "
                        "sha256")


def verify_fetched(expected: dict[Path, Expected], cache: Path) -> None:
    """Before any job runs: every fetched file that exists still has the sha256 it was fetched
    with. A file replaced after its fetch is named with the fix. Hashes are remembered by size
    and mtime in `cache`, so an unchanged checkpoint is read once, not on every invocation."""
    import json

    from deploybench.atomic import write_json

    known = json.loads(cache.read_text()) if cache.is_file() else {}
    seen, changed = {}, []
    for path, want in expected.items():
        if not path.is_file():
            continue
        stat = path.stat()
        key = f"{stat.st_size}:{stat.st_mtime_ns}"
        entry = known.get(str(path))
        actual = entry["sha256"] if entry and entry["stat"] == key else file_sha256(path)
        seen[str(path)] = {"stat": key, "sha256": actual}
        if not want.matches(actual):
            changed.append(f"  {path}: sha256 {actual}, {want.source} says {want.digest}")
    if seen != {k: v for k, v in known.items() if k in seen}:
        write_json(cache, {**known, **seen})
    if changed:
        raise UserError("fetched files changed since their fetch (or their expected checksum "
                        "changed):\n" + "\n".join(changed) + "\ndelete them so that the "
                        "pipeline fetches them again, or fix the checksum")
