"""Documents the project points to exist: every ``*.md`` named in the README, in docs/ or in the code."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MENTION = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w.-]*\w\.md)\b")
"""A path ending in .md that is not part of a URL (``docs/BENCHMARKS.md``, ``DESIGN.md``, ``../README.md``)."""


def prose(path: Path) -> str:
    """The text a reader follows: a Markdown file whole; of Python, the docstrings and comments (code such as
    ``ROOT / "docs" / "BENCHMARKS.md"`` builds its paths from parts)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return text
    docstrings = [node.value.value for node in ast.walk(ast.parse(text))
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                  and isinstance(node.value.value, str)]
    comments = [token.string for token in tokenize.generate_tokens(io.StringIO(text).readline)
                if token.type == tokenize.COMMENT]
    return "\n".join(docstrings + comments)


def mentions(path: Path) -> set[str]:
    return set(MENTION.findall(prose(path)))


def sources() -> list[Path]:
    return ([ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "playground").rglob("*.py"))
            + sorted((ROOT / "bench").rglob("*.py")) + [ROOT / "app.py"])


def test_every_document_named_is_in_the_repository():
    missing = [f"{path.relative_to(ROOT)} names {name}" for path in sources() for name in mentions(path)
               if not (ROOT / name).is_file() and not (path.parent / name).is_file()]
    assert not missing, "\n".join(missing)


def test_the_design_notes_are_linked_from_the_readme_and_the_job_runner():
    assert "docs/DESIGN.md" in mentions(ROOT / "README.md")
    assert "docs/DESIGN.md" in mentions(ROOT / "playground" / "runs" / "jobs.py")


def test_the_check_finds_a_missing_document(tmp_path):
    sample = tmp_path / "sample.md"
    sample.write_text("See the project's `DESIGN.md`, [docs/BENCHMARKS.md](docs/BENCHMARKS.md) and "
                      "https://example.org/x/README.md.\n")
    assert mentions(sample) == {"DESIGN.md", "docs/BENCHMARKS.md"}


def test_the_architecture_page_names_every_module_and_the_readme_links_it():
    page = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = [p for p in (ROOT / "playground").rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    unnamed = [str(p.relative_to(ROOT)) for p in modules if f"`{p.name}`" not in page]
    assert not unnamed, f"docs/ARCHITECTURE.md doesn't name {unnamed}"
    assert "docs/ARCHITECTURE.md" in mentions(ROOT / "README.md")
