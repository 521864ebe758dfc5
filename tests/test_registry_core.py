"""The one Registry: lazy entries, aliases, close-match suggestions, read-only Mapping behaviour."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

import pytest

from disent_core.data.registry import DATASETS
from disent_core.errors import UnknownNameError
from disent_core.methods.registry import METHODS
from disent_core.metrics import METRICS, PROTOCOLS, get_protocol
from disent_core.registry import Lazy, Registry, close_matches, import_attr, suggest


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    """The name of a module on sys.path that is not imported yet."""
    name = "registry_lazy_probe"
    (tmp_path / f"{name}.py").write_text("VALUE = object()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


def _fruit() -> Registry[int]:
    return Registry("fruit", [("apple", 1), ("banana", 2), ("cherry", 3)], aliases={"pomme": "apple"})


def test_lazy_entry_is_imported_on_first_lookup_and_cached(lazy_module):
    reg: Registry[object] = Registry("thing", {"eager": 1, "lazy": Lazy(f"{lazy_module}:VALUE")})
    assert reg.names() == ["eager", "lazy"] and "lazy" in reg and len(reg) == 2
    assert lazy_module not in sys.modules and not reg.is_loaded("lazy") and reg.is_loaded("eager")
    value = reg["lazy"]
    assert value is sys.modules[lazy_module].VALUE and reg.is_loaded("lazy")
    del sys.modules[lazy_module]  # a second lookup uses the cached entry, it does not import again
    assert reg["lazy"] is value and lazy_module not in sys.modules


def test_listing_dataset_names_imports_no_dataset_module():
    code = (
        "import sys\n"
        "from disent_core.data.registry import DATASETS, dataset_names, get_entry\n"
        "names = dataset_names() + list(DATASETS)\n"
        "entries = [e.summary for e in DATASETS.values()] + [get_entry('dsprites').kind]\n"
        "loaded = {e.factory.split(':')[0] for e in DATASETS.values()} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_aliases_resolve_but_are_not_listed():
    reg = _fruit()
    assert reg["pomme"] == 1 and "pomme" in reg and reg.resolve("pomme") == "apple"
    assert reg.resolve("banana") == "banana" and reg.aliases == {"pomme": "apple"}
    assert list(reg) == reg.names() == ["apple", "banana", "cherry"] and len(reg) == 3
    assert DATASETS["dsprites"] is DATASETS["dsprites_full"] and "dsprites" not in DATASETS.names()


def test_unknown_name_suggests_close_names_and_lists_valid_ones():
    reg = _fruit()
    with pytest.raises(UnknownNameError) as info:
        reg["banan"]
    assert str(info.value) == (
        "unknown fruit 'banan'; did you mean banana? valid names: apple, banana, cherry, pomme"
    )
    assert isinstance(info.value, KeyError)
    assert reg.unknown_message("zzz") == "unknown fruit 'zzz'; valid names: apple, banana, cherry, pomme"
    sorted_reg = Registry("fruit", [("b", 1), ("a", 2)], aliases={"c": "a"}, sort_valid_names=True)
    assert sorted_reg.unknown_message("q").endswith("valid names: a, b, c")


def test_registration_refuses_duplicates_and_dangling_aliases():
    reg = _fruit()
    with pytest.raises(ValueError, match="already registered"):
        reg.register("apple", 9)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("pomme", 9)
    with pytest.raises(UnknownNameError, match="unknown fruit 'kiwi'"):
        reg.alias("kiwi2", "kiwi")
    with pytest.raises(ValueError):
        Lazy("no_colon")


def test_behaves_as_a_read_only_mapping():
    reg = _fruit()
    assert isinstance(reg, Mapping)
    assert dict(reg) == {"apple": 1, "banana": 2, "cherry": 3}
    assert list(reg.items()) == [("apple", 1), ("banana", 2), ("cherry", 3)]
    assert list(reg.keys()) == ["apple", "banana", "cherry"] and list(reg.values()) == [1, 2, 3]
    assert reg.get("kiwi") is None and reg.get("kiwi", 0) == 0 and reg.get("pomme") == 1
    with pytest.raises(TypeError):
        reg["kiwi"] = 4  # type: ignore[index]


def test_suggest_and_close_matches():
    valid = ["dlib2019", "corrected", "fast"]
    assert close_matches("dlib", valid) == ["dlib2019"]
    assert suggest("dlib", valid) == "did you mean dlib2019? "
    assert suggest("zzzz", valid) == ""
    assert close_matches("beta_vea", METHODS, n=2) == ["beta_vae", "beta_tc_vae"]
    assert close_matches("migg", ["mig", "mi"], cutoff=0.9) == []
    assert suggest(None, ["None"]) == "did you mean None? "


def test_import_attr():
    assert import_attr("os.path:join") is __import__("os").path.join
    assert import_attr("collections:OrderedDict.fromkeys") is not None
    with pytest.raises(ValueError, match="module:attr"):
        import_attr("os.path.join")


def test_the_project_registries_share_the_type_and_message_format():
    for reg in (DATASETS, METHODS, METRICS, PROTOCOLS):
        assert isinstance(reg, Registry)
    with pytest.raises(UnknownNameError) as info:
        get_protocol("dlib")
    assert str(info.value) == (
        "unknown evaluation protocol 'dlib'; did you mean dlib2019? valid names: dlib2019, corrected, fast"
    )
    with pytest.raises(UnknownNameError, match="unknown metric 'migg'; did you mean mig"):
        METRICS["migg"]
