import json

import pytest

from disent_core.train import train
from studies.cli import main


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(
        {
            "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
            "method": {"name": "beta_vae", "beta": 4},
            "model": {"latent_dim": 4},
            "train": {"steps": 5, "batch_size": 8, "prefetch": 0},
        },
        checkpoint_dir=out,
    )
    return out


def test_evaluate_prints_a_table_and_writes_json(capsys, checkpoint_dir):
    code = main(["evaluate", str(checkpoint_dir), "--protocol", "fast", "--metrics", "mig,sap,unsupervised"])
    assert code == 0
    out = capsys.readouterr().out
    assert "mig.discrete_mig" in out and "sap.SAP_score" in out and "not comparable" in out
    payload = json.loads((checkpoint_dir / "evaluation_fast_seed0.json").read_text())
    assert payload["protocol"] == "fast" and payload["method"] == "beta_vae"
    assert payload["dataset"]["name"] == "dsprites_procedural"
    assert payload["dataset"]["options"] == {"sizes": [3, 2, 4, 4, 4]}
    assert payload["dataset"]["provenance"]["label"] == "procedural"
    assert payload["dataset_provenance"] == "procedural"
    assert set(payload["scores"]) >= {"mig.discrete_mig", "sap.SAP_score"}
    assert "dci.disentanglement" not in payload["scores"]
    assert len(payload["protocol_hash"]) >= 8


def test_evaluate_is_deterministic_per_seed(checkpoint_dir, tmp_path):
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        path = tmp_path / f"{name}.json"
        main(["evaluate", str(checkpoint_dir), "--protocol", "fast", "--metrics", "mig",
              "--seed", str(seed), "--out", str(path)])
        outs.append(json.loads(path.read_text())["scores"]["mig.discrete_mig"])
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_batch_size_changes_no_score(checkpoint_dir, tmp_path, capsys):
    scores = {}
    for batch in (None, "5"):
        path = tmp_path / f"{batch}.json"
        extra = [] if batch is None else ["--batch-size", batch]
        assert main(["evaluate", str(checkpoint_dir), "--protocol", "fast", "--metrics", "mig,reconstruction",
                     "--out", str(path), *extra]) == 0
        payload = json.loads(path.read_text())
        assert payload["batch_size"] == (None if batch is None else 5)
        scores[batch] = payload["scores"]
    assert scores["5"] == pytest.approx(scores[None], rel=1e-5)
    with pytest.raises(SystemExit):
        main(["evaluate", str(checkpoint_dir), "--batch-size", "0"])
    assert "expected a positive integer, got '0'" in capsys.readouterr().err


def test_evaluate_on_a_dataset_of_another_shape_is_refused(capsys, checkpoint_dir):
    code = main(["evaluate", str(checkpoint_dir), "--dataset", "color_dsprites", "--protocol", "fast",
                 "--option", "source=procedural", "--metrics", "mig"])
    assert code == 2
    assert "trained on (1, 64, 64)" in capsys.readouterr().err


def test_a_comparable_protocol_refuses_procedural_data_and_writes_nothing(capsys, checkpoint_dir):
    before = sorted(p.name for p in checkpoint_dir.iterdir())
    assert main(["evaluate", str(checkpoint_dir), "--metrics", "mig"]) == 2  # default protocol dlib2019
    err = capsys.readouterr().err
    assert "dlib2019 protocol compares scores with published numbers" in err and "no real counterpart" in err
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == before


def test_unknown_metric_and_missing_checkpoint_exit_2(capsys, checkpoint_dir, tmp_path):
    assert main(["evaluate", str(checkpoint_dir), "--protocol", "fast", "--metrics", "migg"]) == 2
    assert "mig" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "none")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_representation_flag_is_recorded_and_keeps_the_mean_file(capsys, checkpoint_dir):
    args = ["evaluate", str(checkpoint_dir), "--protocol", "fast", "--metrics", "mig,unsupervised",
            "--seed", "2"]
    assert main(args) == 0
    mean_path = checkpoint_dir / "evaluation_fast_seed2.json"
    mean = json.loads(mean_path.read_text())
    assert mean["representation"] == "mean"
    assert main([*args, "--representation", "sampled"]) == 0
    assert "sampled representation" in capsys.readouterr().out
    sampled = json.loads((checkpoint_dir / "evaluation_fast_sampled_seed2.json").read_text())
    assert sampled["representation"] == "sampled"
    assert sampled["protocol_hash"] == mean["protocol_hash"]
    assert sampled["scores"] != mean["scores"]
    assert json.loads(mean_path.read_text()) == mean
    assert main([*args, "--representation", "sampled", "--out", str(checkpoint_dir / "again.json")]) == 0
    assert json.loads((checkpoint_dir / "again.json").read_text())["scores"] == sampled["scores"]
    with pytest.raises(SystemExit):
        main([*args, "--representation", "median"])
    assert "invalid choice: 'median'" in capsys.readouterr().err
