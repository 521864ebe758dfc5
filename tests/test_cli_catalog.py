"""``disent-study run NAME``: a catalog study by name, from any directory; a file of that name wins.

Every case is a ``--dry-run``, which starts no Ray and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

from studies.cli import main
from studies.cli.catalog import catalog_names

CATALOG = Path(__file__).parents[1] / "studies" / "catalog"
FAST = ["--dry-run", "--images-per-sec", "6400"]


def test_catalog_names_are_the_shipped_specs():
    assert catalog_names() == sorted(p.stem for p in CATALOG.glob("*.yaml"))
    assert "quickstart" in catalog_names()


def test_run_takes_a_catalog_name_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "quickstart", *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run of study quickstart (") and "trials: 6 (" in out
    assert list(tmp_path.iterdir()) == []


def test_a_file_of_the_same_name_wins_over_the_catalog(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = (CATALOG / "quickstart.yaml").read_text()
    assert "\nname: quickstart\n" in text
    Path("quickstart").write_text(text.replace("\nname: quickstart\n", "\nname: my_quickstart\n"))
    assert main(["run", "quickstart", *FAST]) == 0
    assert capsys.readouterr().out.startswith("dry run of study my_quickstart (quickstart)")


def test_an_unknown_name_exits_2_listing_the_catalog(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "quickstrt", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: quickstrt: no such study spec file, nor a catalog study; "
                          "did you mean quickstart? ")
    assert f"catalog studies: {', '.join(catalog_names())}\n" in err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_path_is_reported_as_a_missing_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "quickstart"), *FAST]) == 2
    assert "does not exist" in capsys.readouterr().err
