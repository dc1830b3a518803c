"""Datasets → one in-memory type (``LabeledImages``) → leakage-free few-shot splits (``SplitManifest``).

Public API::

    load_dataset(name, *, size=28, data_dir=None, download=True, classes=None, path=None, channels=None) -> LabeledImages
    load_study_dataset(study_config['dataset'], data_dir=None) -> LabeledImages
    list_datasets(data_dir=None) -> list[DatasetInfo]
    describe_dataset(data) -> dict
    save_examples_grid(data, path, *, per_class=8, seed=0) -> Path
    make_split(data, *, shots=50, protocol=None, seed=0, ...) -> SplitManifest
"""

from synthmed.data.registry import (
    DatasetInfo,
    dataset_names,
    describe_dataset,
    list_datasets,
    load_dataset,
    load_study_dataset,
    resolve_data_dir,
    save_examples_grid,
)
from synthmed.data.splits import HeldoutDesign, SplitManifest, make_heldout_design, make_split
from synthmed.data.types import LabeledImages

__all__ = [
    "DatasetInfo", "HeldoutDesign", "LabeledImages", "SplitManifest", "dataset_names", "describe_dataset",
    "list_datasets", "load_dataset", "load_study_dataset", "make_heldout_design", "make_split", "resolve_data_dir", "save_examples_grid",
]
