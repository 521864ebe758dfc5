"""``disent-study ifp``: a tiny annealing test through the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch

from studies.cli import build_parser, main
from studies.cli.ifp import PLOT_NAME, RESULTS_NAME, format_settings, resolve_settings

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
    settings = text.split("effective settings (base: preset exponential (2022)")[1].split("beta(t) =")[0]
    lines = {line.split()[0]: line.split(maxsplit=2)[1:] for line in settings.splitlines()[1:] if line}
    assert lines["steps"] == ["8", "command line"] and lines["batch_size"] == ["4", "command line"]
    assert lines["lr"] == ["0.0001", "preset exponential (2022)"]
    assert lines["latent_dim"] == ["1", "preset exponential (2022)"]
    assert lines["window"] == ["0.05", "default"] and lines["schedule"] == ["exponential", "default"]
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
    assert results["settings"]["base"] == "preset"
    assert results["settings"]["values"]["steps"] == {"value": 8, "source": "command line"}
    assert results["settings"]["values"]["lr"] == {"value": 1e-4, "source": "preset exponential (2022)"}


def test_linear_schedule_is_described(capsys, tmp_path) -> None:
    args = ["ifp", "--dataset", "dsprites_procedural", "--factors", "scale", *TINY, "--seeds", "1",
            "--schedule", "linear", "--latent-dim", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "max((1 - t/8) * 80, 1)" in capsys.readouterr().out


def settings(*flags: str):
    return resolve_settings(build_parser().parse_args(["ifp", "--dataset", "dsprites_procedural", *flags]))


def test_steps_select_the_schedules_preset_for_every_value_not_given() -> None:
    resolved = settings("--schedule", "linear", "--steps", "70000")
    config = resolved.config
    assert resolved.base == "preset"
    assert (config.steps, config.lr, config.batch_size, config.latent_dim, config.beta_start) == (
        70_000, 5e-4, 256, 10, 80.0
    )
    assert config.early_stop_recon is None and resolved.seeds == 10
    assert resolved.sources["steps"] == resolved.sources["schedule"] == "command line"
    assert resolved.sources["lr"] == resolved.sources["batch_size"] == "preset linear (2021)"
    expo = settings("--steps", "8000").config
    assert (expo.schedule, expo.lr, expo.batch_size, expo.latent_dim) == ("exponential", 1e-4, 64, 1)


def test_no_steps_give_the_quick_demo_on_the_schedules_preset() -> None:
    quick = settings()
    assert quick.base == "quick" and quick.seeds == 2
    assert (quick.config.steps, quick.config.batch_size, quick.config.lr) == (200, 16, 3e-3)
    assert quick.sources["lr"] == quick.sources["seeds"] == "quick demo"
    linear = settings("--schedule", "linear", "--latent-dim", "3")
    assert (linear.config.steps, linear.config.lr, linear.config.latent_dim) == (200, 3e-3, 3)
    assert linear.sources["latent_dim"] == "command line"
    assert linear.sources["beta_start"] == "preset linear (2021)"


def test_flags_given_win_over_the_base() -> None:
    resolved = settings("--schedule", "linear", "--steps", "70000", "--lr", "1e-3", "--batch-size", "32",
                        "--seeds", "3", "--window", "0.1", "--final-beta", "2")
    assert (resolved.config.lr, resolved.config.batch_size, resolved.seeds) == (1e-3, 32, 3)
    assert (resolved.config.window, resolved.final_beta, resolved.config.latent_dim) == (0.1, 2.0, 10)
    assert {resolved.sources[k] for k in ("lr", "batch_size", "seeds", "window", "final_beta")} == {
        "command line"
    }
    assert settings("--quick", "--steps", "1000").config.batch_size == 16
    preset = settings("--preset")
    assert (preset.config.steps, preset.config.lr, preset.sources["steps"]) == (
        8000, 1e-4, "preset exponential (2022)"
    )
    text = format_settings(resolved)
    assert "base: preset linear (2021)" in text and "(unused by linear)" in text
    assert any(line.split(maxsplit=2) == ["lr", "0.001", "command line"] for line in text.splitlines())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "dsprite"], "unknown dataset 'dsprite'"),
        (["--dataset", "dsprites_procedural", "--factors", "colour"], "posX"),
        (["--dataset", "dsprites_procedural", "--option", "sizez=[1]"], "rejects options"),
        (["--dataset", "dsprites_procedural", "--epsilon", "-1"], "epsilon"),
        (["--dataset", "dsprites_procedural", "--seeds", "0"], "--seeds"),
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
    assert "--quick" in text and "--preset" in text
