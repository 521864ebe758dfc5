"""The repository is self-contained: every Markdown document its files cite is in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITED_DOC = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
TEXT = (".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".txt")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if line.endswith(TEXT) and (ROOT / line).is_file()]


def cites_outside(path: Path) -> list[str]:
    """The Markdown paths ``path`` names that exist neither beside it, nor from the root, nor in docs/."""
    missing = []
    for match in CITED_DOC.finditer(path.read_text(errors="replace")):
        cited = match.group(1)
        if cited.startswith(("http", "www.")):
            continue
        places = (path.parent / cited, ROOT / cited, ROOT / "docs" / cited)
        if not any(place.is_file() for place in places):
            missing.append(cited)
    return missing


def test_no_file_cites_a_document_the_repository_does_not_contain():
    problems = {str(p.relative_to(ROOT)): m for p in tracked_text_files() if (m := cites_outside(p))}
    assert problems == {}


def test_the_check_sees_a_citation_of_a_missing_document(tmp_path):
    note = tmp_path / "note.py"
    missing = "elsewhere/spec" + ".md"  # spelled apart so that this file cites nothing itself
    note.write_text(f'"""See {missing} section 5.7 and docs/methods.md."""\n')
    assert cites_outside(note) == [missing]
