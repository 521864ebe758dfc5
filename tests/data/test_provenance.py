"""Dataset provenance: real data carries its source files' SHA-256, stand-ins say ``procedural``, the
Scream variant says which texture it drew, and a comparable protocol refuses anything not real."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import sha256_of, spec_for

from disent_core.data.files import FileSpec
from disent_core.data.provenance import DatasetProvenance, label_is_comparable, require_real_data
from disent_core.data.registry import get_dataset
from disent_core.data.sources import get_source
from disent_core.data.variants import scream_dsprites
from disent_core.errors import ConfigError

SIZES = (1, 3, 2, 4, 4, 4)


def test_real_dsprites_records_its_source_file_hash(dsprites_npz, data_dir):
    get_source("dsprites").prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    for name in ("dsprites_full", "color_dsprites", "dsprites_noshape"):
        provenance = get_dataset(name, data_root=data_dir, download=False).provenance
        assert provenance.kind == "real" and provenance.source == "dsprites" and provenance.comparable
        assert provenance.files == ((dsprites_npz.path.name, sha256_of(dsprites_npz.path)),)
        digest = sha256_of(dsprites_npz.path)
        assert provenance.label() == f"real dsprites: {dsprites_npz.path.name} sha256:{digest}"


@pytest.mark.parametrize(
    ("name", "options"),
    [("dsprites_procedural", {"sizes": SIZES[1:]}),
     ("dsprites_full", {"source": "procedural", "sizes": SIZES[1:]}),
     ("noisy_dsprites", {"source": "procedural", "sizes": SIZES[1:]}),
     ("shapes3d_procedural", {})],
)
def test_procedural_stand_ins_say_procedural(name, options):
    provenance = get_dataset(name, **options).provenance
    assert provenance.kind == "procedural" and provenance.label() == "procedural"
    assert not provenance.comparable and provenance.as_dict()["comparable"] is False


def test_scream_records_the_fallback_texture(tmp_path):
    with pytest.warns(UserWarning, match="procedural stand-in"):
        ds = scream_dsprites(source="procedural", sizes=SIZES[1:], data_root=tmp_path, download=False)
    assert ds.provenance.texture == "procedural"
    assert ds.provenance.label() == "procedural; texture: procedural"
    given = scream_dsprites(source="procedural", sizes=SIZES[1:], image=np.full((100, 100, 3), 0.5))
    assert given.provenance.texture.startswith("image sha256:") and not given.provenance.comparable


def test_scream_with_the_painting_records_its_hash(scream_jpeg, dsprites_npz, data_dir):
    get_source("scream").prepare(data_dir, files=[FileSpec("The_Scream.jpg", (scream_jpeg.as_uri(),))])
    get_source("dsprites").prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    ds = scream_dsprites(data_root=data_dir, download=False, texture="painting")
    painting = f"painting sha256:{sha256_of(scream_jpeg)}"
    assert ds.provenance.texture == painting
    assert ds.provenance.comparable and ds.provenance.label().endswith(f"; texture: {painting}")
    require_real_data("scream_dsprites", ds.provenance, "dlib2019")


def test_a_comparable_protocol_refuses_stand_ins_with_a_way_out():
    with pytest.raises(ConfigError) as err:
        require_real_data("dsprites_full", DatasetProvenance(), "dlib2019")
    message = str(err.value)
    assert "dlib2019" in message and "source: procedural" in message
    assert "disent-study datasets prepare dsprites_full" in message and "fast" in message
    with pytest.raises(ConfigError, match="no real counterpart"):
        require_real_data("dsprites_correlated", DatasetProvenance(), "dlib2019")
    texture = DatasetProvenance(kind="real", source="dsprites", files=(("a.npz", "0"),), texture="procedural")
    with pytest.raises(ConfigError, match=r"texture: painting.*The_Scream"):
        require_real_data("scream_dsprites", texture, "dlib2019")


@pytest.mark.parametrize(
    "provenance",
    [
        DatasetProvenance(),
        DatasetProvenance(kind="real", source="dsprites", files=(("a.npz", "0f"),)),
        DatasetProvenance(kind="real", source="dsprites", texture="painting sha256:1"),
        DatasetProvenance(kind="real", source="dsprites", files=(("a.npz", "0f"),), texture="procedural"),
        DatasetProvenance(kind="real", source="dsprites", texture="image sha256:2"),
        DatasetProvenance(texture="painting sha256:1"),
    ],
)
def test_a_label_says_whether_its_data_is_comparable(provenance):
    assert label_is_comparable(provenance.label()) == provenance.comparable
