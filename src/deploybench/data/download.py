"""Download a dataset's archives (checked against their published digests, through the download
cache, resumable) and unpack them into one directory, which appears only when complete."""

from __future__ import annotations

import zipfile
from pathlib import Path

from deploybench.atomic import atomic_dir
from deploybench.errors import UserError
from deploybench.fetch import Expected, default_cache, fetch

# COCO 2017 val: images and annotations, with the md5 digests that COCO's users have checked
# them by for years (cocodataset.org publishes none).
COCO_ARCHIVES = (
    ("http://images.cocodataset.org/zips/val2017.zip", "md5:442b8da7639aecaf257c1dceb8ba8c80"),
    ("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
     "md5:f4bbac642086de4f52a3fdda2de5fa2c"),
)


def parse_checksum(text: str, url: str) -> Expected:
    algorithm, _, digest = text.partition(":")
    if algorithm not in ("md5", "sha256") or not digest:
        raise UserError(f"{url}: checksum {text!r} is not md5:<hex> or sha256:<hex>")
    return Expected(digest, f"the dataset's {algorithm}", algorithm)


def download_dataset(archives: list[tuple[str, str]], out: Path) -> list[str]:
    """Fetch and unpack every (url, "md5:<hex>" | "sha256:<hex>") archive into `out`; returns
    the top-level entries unpacked."""
    with atomic_dir(out) as tmp:
        for url, checksum in archives:
            archive = tmp / ".archive.zip"
            fetch(url, parse_checksum(checksum, url), archive, cache=default_cache())
            try:
                with zipfile.ZipFile(archive) as unpacked:
                    unpacked.extractall(tmp)  # zipfile drops absolute paths and `..`
            except zipfile.BadZipFile as err:
                raise UserError(f"{url}: not a zip archive ({err}), though its checksum "
                                "matches") from None
            archive.unlink()
        return sorted(p.name for p in tmp.iterdir())
