"""Ground-truth datasets: factor spaces, stores, real and procedural datasets, training streams."""

from disent_core.data.dataset import GroundTruthDataset, ObservationTransform
from disent_core.data.factor_space import FactorSpace
from disent_core.data.paths import data_root
from disent_core.data.registry import dataset_names, get_dataset, get_entry
from disent_core.data.stream import TrainingStream

__all__ = [
    "FactorSpace",
    "GroundTruthDataset",
    "ObservationTransform",
    "TrainingStream",
    "data_root",
    "dataset_names",
    "get_dataset",
    "get_entry",
]
