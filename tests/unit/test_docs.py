"""The repository's documentation: the generated catalog tables are current, links stay inside.

(a) ``docs/troubleshooting.md`` holds exactly what :func:`devtools.docs.render` makes of the
    troubleshooting and limitations catalogs (rendered in memory and compared with the file; the
    failure names the command that regenerates it), and the check itself fails when a message of the
    catalog changes;
(b) table cells escape ``|`` and line breaks, so that a catalog text cannot break a row;
(c) every relative link in ``README.md`` and ``docs/*.md`` points to an existing file (and, for a
    ``#fragment`` into a Markdown page, an existing heading) inside the repository; none leaves the
    repository, and none of these pages mentions the team kit outside it (``../shared``).
"""
from __future__ import annotations

import copy
import difflib
import json
import re
from pathlib import Path

import pytest

from devtools import docs
from shared.domain import troubleshooting
from shared.domain.troubleshooting import CATALOG_PATH, Catalog

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md")])
#: Text that points at the team's kit beside the repository, which the product's pages must not.
OUTSIDE_MENTIONS = ("../shared", "/work/shared")


def _raw_catalog() -> dict:
    return json.loads(CATALOG_PATH.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# (a) The generated catalog is current
# ---------------------------------------------------------------------------------------------

def test_generated_catalog_in_docs_is_current():
    text = docs.TROUBLESHOOTING_DOC.read_text(encoding="utf-8")
    try:
        actual = docs.generated_part(text)
    except ValueError as exc:
        pytest.fail(f"{exc}. {docs.stale_message()}")
    expected = docs.render()
    if actual != expected:
        diff = list(difflib.unified_diff(actual.splitlines(), expected.splitlines(), "docs (file)",
                                         "catalog (rendered)", lineterm="", n=0))
        shown = "\n".join(line[:300] for line in diff[:12])
        pytest.fail(f"{docs.stale_message()}\n{shown}", pytrace=False)


def test_the_check_fails_when_a_message_of_the_catalog_changes(monkeypatch, tmp_path, capsys):
    raw = _raw_catalog()
    changed = copy.deepcopy(raw)
    changed["messages"]["ACCOUNT_LOCKED"]["message"] += " (edited)"
    edited = Catalog.from_dict(changed)

    assert docs.is_current()  # the committed page matches the real catalog...
    assert not docs.is_current(catalog=edited)  # ...and no longer matches an edited one
    assert "(edited)" in docs.render(catalog=edited)

    page = tmp_path / "troubleshooting.md"
    page.write_text(docs.TROUBLESHOOTING_DOC.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(troubleshooting, "load_catalog", lambda: edited)
    assert docs.main(["--check", "--path", str(page)]) == 1
    assert docs.COMMAND in capsys.readouterr().err
    assert docs.main(["--path", str(page)]) == 0  # regenerates...
    assert "(edited)" in page.read_text(encoding="utf-8")
    assert docs.main(["--check", "--path", str(page)]) == 0  # ...and then it is current


def test_every_message_rule_and_limitation_is_in_the_tables():
    rendered = docs.render()
    catalog = troubleshooting.load_catalog()
    missing = [mid for mid in catalog.messages if f"`{mid}`" not in rendered]
    missing += [r["id"] for r in catalog.rules if f"`{r['id']}`" not in rendered]
    from shared.domain.profile import limitation_catalog
    missing += [lid for lid in limitation_catalog() if f"`{lid}`" not in rendered]
    assert not missing


def test_generated_part_is_outside_the_hand_written_text():
    text = docs.TROUBLESHOOTING_DOC.read_text(encoding="utf-8")
    assert text.count(docs.BEGIN) == 1 and text.count(docs.END) == 1
    assert docs.replace_generated(text, docs.render()) == text
    with pytest.raises(ValueError):
        docs.generated_part("no markers here")


# ---------------------------------------------------------------------------------------------
# (b) Cells escape what would break a row
# ---------------------------------------------------------------------------------------------

def _split_row(row: str) -> list[str]:
    """A table row's cells, split at the pipes that are not escaped."""
    assert row.startswith("| ") and row.endswith(" |")
    return [c.strip() for c in re.split(r"(?<!\\)\|", row[1:-1])]


def test_cells_escape_pipes_and_line_breaks():
    raw = _raw_catalog()
    raw["messages"]["ACCOUNT_LOCKED"]["message"] = "first | second\nthird\r\nfourth"
    raw["messages"]["ACCOUNT_LOCKED"]["solutions"] = ["a|b", "c <d> & e", "*not emphasis*"]
    rendered = docs.render(catalog=Catalog.from_dict(raw))
    rows = [line for line in rendered.splitlines() if line.startswith("| `ACCOUNT_LOCKED`")]
    message_row = rows[0]
    cells = _split_row(message_row)
    assert len(cells) == 5
    assert cells[2] == r"first \| second<br>third<br>fourth"
    assert cells[3] == r"<ul><li>a\|b</li><li>c &lt;d&gt; &amp; e</li><li>\*not emphasis\*</li></ul>"
    header = next(line for line in rendered.splitlines() if line.startswith("| Message id | Status"))
    assert len(_split_row(header)) == 5


def test_every_generated_row_has_as_many_cells_as_its_header():
    width = None
    for line in docs.render().splitlines():
        if not line.startswith("|"):
            width = None
        elif line.startswith("|---"):
            continue
        elif width is None:
            width = len(_split_row(line))  # a table's header row
        else:
            assert len(_split_row(line)) == width, line[:120]


# ---------------------------------------------------------------------------------------------
# (c) Links stay inside the repository
# ---------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def link_targets(markdown: str) -> list[str]:
    """Targets of the Markdown and HTML links of a page (not those inside code)."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    return [m.group(1) for pattern in (_INLINE_LINK, _REFERENCE, _HTML_LINK) for m in pattern.finditer(text)]


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings (lower case, punctuation dropped, spaces to dashes)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _FENCE.sub("", markdown).splitlines():
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    anchors.update(re.findall(r"""<a\s+(?:name|id)=["']([^"']+)["']""", markdown))
    return anchors


def link_problems(page: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the relative links of ``page``: missing targets, targets outside ``root``."""
    problems = []
    markdown = page.read_text(encoding="utf-8")
    for target in link_targets(markdown):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # absolute URL (https:, mailto:, ...)
        path_part, _, fragment = target.partition("#")
        if target.startswith("/"):
            problems.append(f"{target}: absolute path; link relative to the page")
            continue
        resolved = (page.parent / path_part).resolve() if path_part else page.resolve()
        if not resolved.is_relative_to(root.resolve()):
            problems.append(f"{target}: leaves the repository")
            continue
        if not resolved.exists():
            problems.append(f"{target}: no such file in the repository")
            continue
        if fragment and resolved.suffix == ".md" and resolved.is_file():
            if fragment not in heading_anchors(resolved.read_text(encoding="utf-8")):
                problems.append(f"{target}: no heading #{fragment} in {resolved.relative_to(root.resolve())}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_inside_the_repository(page):
    assert not link_problems(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_do_not_mention_the_kit_outside_the_repository(page):
    text = page.read_text(encoding="utf-8")
    assert not [m for m in OUTSIDE_MENTIONS if m in text]


def test_readme_points_to_the_documentation():
    targets = link_targets((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "docs/README.md" in targets
    assert any(t.startswith("docs/overview.md") for t in targets)
    assert any(t.startswith("docs/troubleshooting.md") for t in targets)


def test_docs_index_links_every_page():
    targets = {t.partition("#")[0] for t in link_targets((DOCS / "README.md").read_text(encoding="utf-8"))}
    assert {p.name for p in DOCS.glob("*.md")} - {"README.md"} <= targets


def test_the_link_checker_finds_bad_links(tmp_path):
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "ok.md").write_text("# A heading\n", encoding="utf-8")
    (tmp_path / "outside.md").write_text("x", encoding="utf-8")
    page = root / "docs" / "page.md"
    page.write_text(
        "[fine](ok.md) [fine too](ok.md#a-heading) [web](https://example.com) [self](#title)\n"
        "# Title\n"
        "[out](../../outside.md) [gone](missing.md) [anchor](ok.md#nope) [abs](/etc/passwd)\n"
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n"
        '[ref]: ../../outside.md\n<a href="missing.html">html</a>\n', encoding="utf-8")
    problems = link_problems(page, root)
    assert [p.split(":")[0] for p in problems] == [
        "../../outside.md", "missing.md", "ok.md#nope", "/etc/passwd", "../../outside.md", "missing.html"]
