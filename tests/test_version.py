"""``disent-study --version`` prints the installed package's version."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from studies.cli import main


def test_version_prints_the_installed_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"disent-study {version('disent-studies')}"
