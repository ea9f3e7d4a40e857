"""The lock file: the full sha256 of every checkpoint whose config gives none (zoo models).

OpenMMLab weight file names carry only the first 8 hex digits of their sha256. The first fetch
checks that prefix and records the whole digest here; every later fetch, the Snakefile's check
before any job, and every step that loads the checkpoint verify the whole digest. The file is
meant to be committed with the config, as a package manager's lock file is.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import yaml

from deploybench.atomic import atomic_path, directory_lock
from deploybench.errors import UserError
from deploybench.fetch import Expected

HEADER = """\
# deploybench checksum lock: the full sha256 of each checkpoint whose config gives none,
# recorded at its first download after the 8-hex prefix in its file name matched. Commit it
# with the config; later runs verify every checkpoint against it. To accept a new file under
# the same name, delete its line.
"""


def read(path: Path | str) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not a valid lock file ({err}); restore it from version "
                        "control or delete it to record the checksums again") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UserError(f"{path}: a lock file maps checkpoint file names to sha256 digests")
    return {str(k): v.lower() for k, v in data.items()}


def lookup(path: Path | str, name: str) -> str | None:
    return read(path).get(name)


def locked(path: Path | str, url: str | None) -> str:
    """The whole sha256 the lock holds for the checkpoint fetched from `url` (steps that load
    it check against this)."""
    if not url:
        raise UserError("--checkpoint-lock needs --checkpoint-url (the lock's key)")
    found = lookup(path, key(url))
    if found is None:
        raise UserError(f"{path} has no sha256 for {key(url)}, which the fetch step records: "
                        "delete the fetched checkpoint so that it is fetched (and locked) again")
    return found


def record(path: Path | str, name: str, sha256: str) -> None:
    """Add `name: sha256` to the lock; a different digest already there is an error. Fetch jobs
    running at once take turns (a lock on the directory), and the file is replaced atomically."""
    path = Path(path)
    with directory_lock(path.parent):
        entries = read(path)
        known = entries.get(name)
        if known == sha256:
            return
        if known is not None:
            raise UserError(f"{name}: sha256 {sha256}, but {path} records {known}; the file "
                            f"changed upstream or in transit. Delete its line from {path} only "
                            "if you trust the new file")
        entries[name] = sha256
        body = yaml.safe_dump(dict(sorted(entries.items())), default_flow_style=False, width=200)
        with atomic_path(path) as tmp:
            tmp.write_text(HEADER + body)


def key(url: str) -> str:
    """A checkpoint's key in the lock file: its file name (the same on every mirror)."""
    return Path(urllib.parse.urlparse(url).path).name


def expected(url: str, sha256: str | None, lock: Path | str | None) -> Expected:
    """What a checkpoint must hash to: the config's sha256; else the lock file's entry; else
    (first fetch) the 8-hex prefix of its OpenMMLab file name."""
    from deploybench.zoo import SHA256_PREFIX

    if sha256:
        return Expected(sha256, "the config's sha256")
    if lock is None:
        raise UserError(f"{url}: no sha256 and no lock file to verify it with")
    name = key(url)
    if locked := lookup(lock, name):
        return Expected(locked, str(lock))
    if match := SHA256_PREFIX.search(name):
        return Expected(match.group(1), f"the sha256 prefix in its name {name}")
    raise UserError(f"{url}: no checksum to verify it with: the config gives no sha256, {lock} "
                    f"has no entry {name!r} and the file name carries no 8-hex sha256 prefix; "
                    "set models.<name>.checkpoint.sha256")
