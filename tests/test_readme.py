import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\n```\n(.+?)\n```\n<!-- /{marker} -->", text, re.S)
    assert match, f"README.md lacks the {marker} block"
    return match.group(1)


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert text.index("<!-- main-command -->") < text.index("<!-- test-command -->") < text.index("## ")
    main, tests = _block("main-command"), _block("test-command")
    for command in (main, tests):
        assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
        assert "pip install torch==2.13.0 && pip install -e " in command
    assert tests.endswith("python -m pytest -q")
    spec = main.split("disent-study run ")[1].split()[0]
    assert (ROOT / spec).is_file()


def test_ci_runs_exactly_the_readme_test_command():
    for marker in ("main-command", "test-command"):
        out = subprocess.run(
            ["bash", str(ROOT / ".ci" / "readme-command"), marker], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == _block(marker)
    assert ".ci/readme-command test-command" in (ROOT / ".ci" / "run").read_text()
