"""The README is a front door and docs/ holds the rest: short, every link lands, every results page says how and when.

    .venv/bin/python -m pytest -q tests/test_docs.py

Plain text checks (no torch, no network): README.md stays under 300 lines; every relative link (and image) in
README.md and docs/**/*.md points at a file that exists, and at a heading that exists when it names an anchor;
every page under docs/results/ names the command that prints its numbers and the date they were measured; every
docs page can be reached by following links from README.md.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README] + sorted(DOCS.rglob("*.md"))
RESULTS = sorted((DOCS / "results").glob("*.md"))

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
COMMAND = re.compile(r"(edgetrim |python |make )")


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked (links there are not links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return lines


def slug(heading: str, seen: dict[str, int]) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading anchors on its text
    s = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
    n = seen.get(s, 0)
    seen[s] = n + 1
    return s if n == 0 else f"{s}-{n}"


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page.read_text(encoding="utf-8")):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            out.add(slug(m.group(2), seen))
    return out


def links(page: Path) -> list[str]:
    return [m.group(1) for line in prose(page.read_text(encoding="utf-8")) for m in LINK.finditer(line)]


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target))  # http:, https:, mailto:, ...


def resolve(page: Path, target: str) -> tuple[Path, str]:
    """(the file a relative link points at, its anchor or '')."""
    path, _, anchor = target.partition("#")
    return ((page.parent / unquote(path)).resolve() if path else page.resolve()), anchor


def test_readme_is_a_front_door():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n < 300, f"README.md has {n} lines; keep it under 300 and move the rest to a page under docs/."


def test_there_are_docs_and_results_pages():
    assert (DOCS / "index.md").is_file() and (DOCS / "results" / "index.md").is_file()
    assert len(RESULTS) > 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands(page):
    broken = []
    for target in links(page):
        if is_external(target):
            continue
        path, anchor = resolve(page, target)
        if not path.exists():
            broken.append(f"{target} (no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no heading with the anchor #{anchor} in {path.name})")
    assert not broken, f"{page.relative_to(ROOT)} links to what is not there: " + "; ".join(broken)


@pytest.mark.parametrize("page", RESULTS, ids=lambda p: p.name)
def test_every_results_page_names_its_command_and_date(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    assert any(COMMAND.search(line) for line in lines), \
        f"{page.name} does not name the command that prints its numbers (a line with `edgetrim `, `python ` or `make `)."
    assert any(DATE.search(line) for line in lines), \
        f"{page.name} does not say when its numbers were measured (a date as YYYY-MM-DD)."


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), [README.resolve()]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for target in links(page):
            if is_external(target):
                continue
            path, _ = resolve(page, target)
            if path.suffix == ".md" and path.is_file() and path not in seen:
                todo.append(path)
    orphans = [str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if p.resolve() not in seen]
    assert not orphans, f"no chain of links from README.md reaches: {', '.join(sorted(orphans))}"


def test_the_checks_see_links_and_anchors():
    """The link pattern and the slugs, on known cases (so a check that matches nothing cannot pass quietly)."""
    line = "see [Kept points](dashboard.md#kept-points-compute-once) and ![a](model.png), not `[x](y.md)`"
    assert [m.group(1) for m in LINK.finditer(prose(line)[0])] == ["dashboard.md#kept-points-compute-once", "model.png"]
    assert slug("Picks judge on validation, report on test", {}) == "picks-judge-on-validation-report-on-test"
    assert slug("Kept points: compute once", {}) == "kept-points-compute-once"
    assert slug("What is measured, and how", {}) == "what-is-measured-and-how"
    assert "README.md" not in [p.name for p in RESULTS]
    assert len(links(README)) > 10
