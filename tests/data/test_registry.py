import pytest

from disent_core.data import dataset_names, get_dataset, get_entry
from disent_core.errors import ConfigError, UnknownNameError


def test_every_name_resolves_and_aliases_work():
    assert get_entry("dsprites").name == "dsprites_full"
    for name in dataset_names():
        assert get_entry(name).name == name


def test_unknown_name_lists_the_closest_and_all_valid_names():
    with pytest.raises(UnknownNameError) as info:
        get_entry("shapes3")
    message = str(info.value)
    assert "did you mean shapes3d" in message and "smallnorb" in message


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ConfigError, match="no option 'sizez'; its options are: sizes"):
        get_dataset("dsprites_procedural", sizez=[1, 1, 1, 1, 1])


@pytest.mark.parametrize("name", ["dsprites_procedural", "shapes3d_procedural", "dsprites_correlated"])
def test_procedural_datasets_build_offline(name):
    dataset = get_dataset(name)
    assert len(dataset) == dataset.factor_space.size
    assert dataset.observation_shape[1:] == (64, 64)
