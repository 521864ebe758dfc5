"""``disent-study ifp``: a tiny annealing test through the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch

from studies.cli import main
from studies.ifp_cmd import PLOT_NAME, RESULTS_NAME

TINY = ["--option", "sizes=[3,2,4,4,4]", "--steps", "8", "--seeds", "2", "--batch-size", "4",
        "--threads", "1"]


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_tiny_run_prints_the_table_and_writes_the_plot(capsys, tmp_path) -> None:
    out = tmp_path / "ifp"
    args = ["ifp", "--dataset", "dsprites_procedural", "--factors", "shape,posX", *TINY, "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "70 exp(-15 t/8) + 1" in text
    table = text.split("factor ")[1]
    assert "frozen" in table and "median" in table
    rows = [line.split()[0] for line in table.splitlines()[1:3]]
    assert rows == ["shape", "posX"]
    assert "proposed DEFT betas: [" in text
    png = (out / PLOT_NAME).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    results = json.loads((out / RESULTS_NAME).read_text())
    assert [(r["factor"], r["seed"]) for r in results["runs"]] == [
        ("shape", 0), ("shape", 1), ("posX", 0), ("posX", 1)
    ]
    assert results["config"]["steps"] == 8 and results["proposal"]["betas"][-1] == 1.0


def test_linear_schedule_is_described(capsys, tmp_path) -> None:
    args = ["ifp", "--dataset", "dsprites_procedural", "--factors", "scale", *TINY, "--seeds", "1",
            "--schedule", "linear", "--latent-dim", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "max((1 - t/8) * 80, 1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "dsprite"], "unknown dataset 'dsprite'"),
        (["--dataset", "dsprites_procedural", "--factors", "colour"], "posX"),
        (["--dataset", "dsprites_procedural", "--option", "sizez=[1]"], "rejects options"),
        (["--dataset", "dsprites_procedural", "--epsilon", "-1"], "epsilon"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, tmp_path, args, message) -> None:
    assert main(["ifp", *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if "dsprite'" in message:
        assert "dsprites_procedural" in err and "dsprites_correlated" in err


def test_help_documents_realistic_settings(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["ifp", "--help"])
    text = capsys.readouterr().out
    assert "--steps 8000" in text and "--steps 70000" in text
