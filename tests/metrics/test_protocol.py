import pytest

from disent_core.errors import ConfigError, UnknownNameError
from disent_core.metrics import PROTOCOLS, Protocol, get_protocol


def test_builtin_protocols_pin_dlib_settings():
    dlib = get_protocol("dlib2019")
    assert dlib.comparable and dlib.factor_vae.index_quirk and dlib.one_value_factors == "error"
    assert dlib.discretizer.num_bins == 20
    assert (dlib.beta_vae.batch_size, dlib.beta_vae.num_train, dlib.beta_vae.num_eval) == (64, 10_000, 5_000)
    fv = dlib.factor_vae
    assert (fv.batch_size, fv.num_train, fv.num_eval, fv.num_variance_estimate) == (64, 10_000, 5_000, 10_000)
    assert fv.prune_threshold == 0.05
    assert dlib.mig.num_train == 10_000
    assert (dlib.dci.num_train, dlib.dci.num_test, dlib.dci.estimator) == (10_000, 5_000, "gbt")
    assert (dlib.sap.svc_c, dlib.sap.continuous_factors) == (0.01, False)
    assert dlib.beta_vae.solver == dlib.modularity.solver == "liblinear_ovr"


def test_corrected_differs_only_by_the_fixes():
    dlib, corrected = get_protocol("dlib2019").settings(), get_protocol("corrected").settings()
    changed = {k for k in dlib if dlib[k] != corrected[k]}
    assert changed == {"factor_vae", "one_value_factors"}
    assert corrected["factor_vae"] == {**dlib["factor_vae"], "index_quirk": False}


def test_fast_is_smaller_and_not_comparable():
    fast = get_protocol("fast")
    assert not fast.comparable and fast.dci.estimator == "hist_gbt"
    assert fast.dci.num_train == 1000 and fast.mig.num_train == 2000 and fast.factor_vae.num_train == 200
    # the two scores that encode batches per data point stay at about 25,000 encoded images
    beta, factor = fast.beta_vae, fast.factor_vae
    encoded = 2 * beta.batch_size * (beta.num_train + beta.num_eval)
    encoded += factor.batch_size * (factor.num_train + factor.num_eval)
    assert encoded <= 25_000


def test_hash_covers_settings_not_names():
    hashes = {p.hash for p in PROTOCOLS.values()}
    assert len(hashes) == len(PROTOCOLS)
    dlib = get_protocol("dlib2019")
    renamed = Protocol.model_validate({**dlib.model_dump(), "name": "other", "description": "x"})
    assert renamed.hash == dlib.hash
    assert len(dlib.hash) == 16 and int(dlib.hash, 16) >= 0


def test_with_sizes_renames_rehashes_and_marks_not_comparable():
    dlib = get_protocol("dlib2019")
    small = dlib.with_sizes(num_train=1000, num_test=500)
    assert small.name == "dlib2019+num_test=500,num_train=1000"
    assert small.hash != dlib.hash and not small.comparable
    assert small.mig.num_train == small.dci.num_train == small.beta_vae.num_train == 1000
    assert small.sap.num_test == small.modularity.num_test == 500
    assert small.factor_vae.index_quirk  # everything else kept
    assert dlib.mig.num_train == 10_000  # the original is unchanged


def test_override_dotted_paths():
    p = get_protocol("corrected").override({"dci.estimator": "hgb"})
    assert p.name == "corrected+dci.estimator=hgb" and p.dci.estimator == "hgb"
    assert p.hash != get_protocol("corrected").hash


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.with_sizes(num_trian=10),
        lambda p: p.with_sizes(num_train=1),
        lambda p: p.override({"dci.nope": 1}),
        lambda p: p.override({"nope.num_train": 1}),
        lambda p: p.override({"dci.estimator": "xgboost"}),
        lambda p: p.override({"name": "x"}),
    ],
)
def test_invalid_overrides_raise_config_error(call):
    with pytest.raises(ConfigError):
        call(get_protocol("dlib2019"))


def test_unknown_protocol():
    with pytest.raises(UnknownNameError, match="dlib2019"):
        get_protocol("dlib2018")
