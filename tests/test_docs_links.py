"""The manual's links hold: every relative link in README.md and docs/*.md names a file of the
repository, and every `#anchor` a heading of its target, by GitHub's rule. The README stays a
front door (at most 200 lines). Pure file reading: no package is imported."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
# A code span: within one paragraph (no blank line inside).
CODE_SPAN = re.compile(r"(`+)(?:(?!\n[ \t]*\n).)+?(?<!`)\1(?!`)", re.DOTALL)
# [text](target "title") and ![alt](target); the text may hold one level of brackets and wrap.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # http:, https:, mailto:, ...
LINE_ANCHOR = re.compile(r"^L\d+(-L\d+)?$")  # GitHub's line anchors on a source file


def _prose_lines(text: str) -> list[str]:
    """The lines of a markdown file with fenced code blocks blanked out."""
    lines, fence = [], ""
    for line in text.splitlines():
        opened = FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
            lines.append("")
        elif opened:
            fence = opened.group(1)
            lines.append("")
        else:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text: markdown marks and punctuation dropped (letters,
    digits, spaces, hyphens and underscores kept), lower case, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a markdown file; a repeated one gets -1, -2, ..."""
    seen: dict[str, int] = {}
    found = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The targets of a file's links and images (inline and reference-style), code left out."""
    prose = CODE_SPAN.sub("", "\n".join(_prose_lines(path.read_text(encoding="utf-8"))))
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def link_problem(page: Path, target: str) -> str | None:
    """Why `target`, a link on `page`, does not resolve; None where it does or is external."""
    if not target or SCHEME.match(target) or target.startswith("//"):
        return None
    file_part, _, anchor = target.partition("#")
    file_part, anchor = unquote(file_part), unquote(anchor)
    if not file_part:
        resolved = page
    elif file_part.startswith("/"):  # GitHub reads a leading / from the repository's root
        resolved = (REPO / file_part.lstrip("/")).resolve()
    else:
        resolved = (page.parent / file_part).resolve()
    if not resolved.is_relative_to(REPO):
        return f"{target}: leads outside the repository"
    if not resolved.is_file():
        return f"{target}: no file {resolved.relative_to(REPO)}"
    if not anchor:
        return None
    if resolved.suffix.lower() not in (".md", ".markdown"):
        return None if LINE_ANCHOR.match(anchor) else f"{target}: #{anchor} in a non-markdown file"
    if anchor not in anchors(resolved):
        return f"{target}: no heading with anchor #{anchor} in {resolved.relative_to(REPO)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    problems = [p for t in links(page) if (p := link_problem(page, t))]
    assert not problems, f"{page.relative_to(REPO)}:\n" + "\n".join(problems)


def test_readme_is_a_front_door() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; keep it to {README_MAX_LINES} and move detail to docs/")


def test_readme_links_every_docs_page() -> None:
    linked = {(README.parent / unquote(t.partition("#")[0])).resolve() for t in links(README)
              if not SCHEME.match(t)}
    unlinked = [str(p.relative_to(REPO)) for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"README.md's Documentation does not link {', '.join(unlinked)}"


def test_slug_follows_github() -> None:
    assert slug("Containers, the GPU runner and pull requests") == (
        "containers-the-gpu-runner-and-pull-requests")
    assert slug("Run time: steps forked, not started") == "run-time-steps-forked-not-started"
    assert slug("`deploybench compare` and *flags*") == "deploybench-compare-and-flags"
    assert slug("snake_case and hy-phen") == "snake_case-and-hy-phen"


def test_repeated_headings_are_numbered(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n```bash\n# not a heading\n```\n\n### Notes\n")
    assert anchors(page) == {"notes", "notes-1", "notes-2"}


def test_backend_tables_are_the_registry() -> None:
    """The README's and docs/backends.md's tables of backends are `deploybench backends`:
    a backend's spec, not a hand-kept copy."""
    from deploybench.backends.registry import table

    assert table(how=False) in README.read_text(encoding="utf-8")
    assert table(how=True) in (REPO / "docs" / "backends.md").read_text(encoding="utf-8")
