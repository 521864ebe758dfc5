import shutil
from pathlib import Path

import pytest
import yaml

from studies.cli import main

EXAMPLE = Path(__file__).parents[1] / "examples" / "train_beta_vae.yaml"


@pytest.fixture
def small_config(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["dataset"]["options"] = {"sizes": [3, 2, 4, 4, 4]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_datasets_list_names_every_dataset(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DISENT_DATA", str(tmp_path))
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("dsprites_full", "dsprites_procedural", "shapes3d", "smallnorb", "scream_dsprites"):
        assert name in out
    assert str(tmp_path) in out


def test_datasets_info_of_a_procedural_dataset(capsys):
    assert main(["datasets", "info", "dsprites_procedural"]) == 0
    out = capsys.readouterr().out
    assert "737,280" in out and "orientation" in out and "nuisance" in out


def test_prepare_of_a_procedural_dataset_needs_nothing(capsys):
    assert main(["datasets", "prepare", "shapes3d_procedural"]) == 0
    assert "nothing to download" in capsys.readouterr().out


def test_unknown_dataset_exits_2_with_valid_names(capsys):
    assert main(["datasets", "info", "dsprite"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'dsprite'" in err and "dsprites_full" in err and "Traceback" not in err


def test_train_prints_losses_and_kl_per_dimension(capsys, small_config, tmp_path):
    out_dir = tmp_path / "run"
    code = main(["train", str(small_config), "--set", "train.steps=20", "--set", "train.report_every=10",
                 "--out", str(out_dir)])
    assert code == 0
    out = capsys.readouterr().out
    assert "step 20/20" in out and "recon=" in out and "kl=" in out
    assert out.count("kl/dim:") == 2
    assert len(out.split("kl/dim:")[-1].split("\n")[0].split()) == 10
    assert (out_dir / "checkpoint.pt").is_file() and (out_dir / "config.yaml").is_file()


def test_train_refuses_to_overwrite_and_resumes(capsys, small_config, tmp_path):
    out_dir = tmp_path / "run"
    assert main(["train", str(small_config), "--set", "train.steps=10", "--out", str(out_dir)]) == 0
    before = (out_dir / "checkpoint.pt").read_bytes()
    assert main(["train", str(small_config), "--set", "train.steps=20", "--out", str(out_dir)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out_dir / "checkpoint.pt").read_bytes() == before
    args = ["train", str(small_config), "--set", "train.steps=20", "--out", str(out_dir)]
    assert main([*args, "--resume"]) == 0
    assert "step 20/20" in capsys.readouterr().out


def test_invalid_config_exits_2_naming_the_field(capsys, small_config):
    assert main(["train", str(small_config), "--set", "method.beta=-2"]) == 2
    err = capsys.readouterr().err
    assert "method.beta" in err and "Traceback" not in err


def test_missing_config_file(capsys, tmp_path):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_console_script_is_installed():
    assert shutil.which("disent-study") is not None


def test_a_refused_resume_leaves_the_run_directory_as_it_was(capsys, small_config, tmp_path):
    out_dir = tmp_path / "run"
    assert main(["train", str(small_config), "--set", "train.steps=10", "--out", str(out_dir)]) == 0
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    capsys.readouterr()
    # a different configuration
    assert main(["train", str(small_config), "--set", "train.steps=20", "--set", "method.beta=8",
                 "--out", str(out_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "method" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    # a corrupt checkpoint
    (out_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before["checkpoint.pt"] = b"not a checkpoint"
    resume = ["train", str(small_config), "--set", "train.steps=20", "--out", str(out_dir), "--resume"]
    assert main(resume) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before


def test_a_run_that_cannot_fit_in_memory_writes_nothing(capsys, small_config, tmp_path):
    out_dir = tmp_path / "run"
    assert main(["train", str(small_config), "--set", "train.batch_size=1000000", "--out", str(out_dir)]) == 2
    assert "of host memory but" in capsys.readouterr().err
    assert not out_dir.exists()
