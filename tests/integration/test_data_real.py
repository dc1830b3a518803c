"""The data layer on the real files in $SYNTHMED_DATA_DIR: PneumoniaMNIST (official) and HAM10000 (fraction)."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data import load_dataset, make_split
from synthmed.data.splits import pixel_hashes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pneumonia(data_dir):
    return load_dataset("pneumoniamnist", data_dir=data_dir)


@pytest.fixture(scope="module")
def ham28(data_dir):
    if not (data_dir / "ham10000_28.npz").exists():
        pytest.skip(f"ham10000_28.npz not in {data_dir}")
    return load_dataset("ham10000", size=28, data_dir=data_dir)


def test_pneumoniamnist_official_counts(pneumonia):
    assert pneumonia.images.shape == (5856, 28, 28, 1)
    split = pneumonia.official_split
    counts = {s: np.bincount(pneumonia.labels[split == s]).tolist() for s in ("train", "val", "test")}
    assert counts == {"train": [1214, 3494], "val": [135, 389], "test": [234, 390]}  # MedMNIST v2 official


def test_pneumoniamnist_50shot_finds_the_8_train_val_duplicates(pneumonia, tmp_path):
    m = make_split(pneumonia, shots=50, seed=0)
    assert m.protocol == "official"
    assert m.counts["train"] == {"normal": 50, "pneumonia": 50}
    assert m.counts["train_pool"] == {"normal": 1214, "pneumonia": 3494}
    assert m.counts["test"] == {"normal": 234, "pneumonia": 390}
    rep = m.duplicates
    assert rep.shared_images == {"train_pool/val": 8, "train_pool/test": 0, "val/test": 0}  # as PROVENANCE.md states
    hashes = pixel_hashes(pneumonia.images)
    removed = rep.removed["val"]
    assert len(set(hashes[removed])) == 8 and rep.removed["test"] == []
    assert sum(m.counts["val"].values()) == 524 - len(removed)
    assert not set(hashes[m.indices["val"]]) & set(hashes[m.indices["train_pool"]])
    assert rep.within_split["train_pool"] == 4708 - 4690 and rep.within_split["test"] == 624 - 621

    again = make_split(pneumonia, shots=50, seed=0)
    m.to_json(tmp_path / "a.json")
    again.to_json(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes() and m.hash == again.hash
    parts = m.apply(pneumonia)
    assert parts["train"].images.shape == (100, 28, 28, 1)


def test_ham10000_fraction_20shot_respects_lesions(ham28):
    m = make_split(ham28, shots=20, seed=0)
    assert m.protocol == "fraction"
    assert set(m.counts["train"].values()) == {20}
    assert all(n >= 1 for s in ("val", "test") for n in m.counts[s].values())
    groups = ham28.groups
    multi = [g for g, n in zip(*np.unique(groups, return_counts=True)) if n > 1]
    assert multi, "the real file has lesions with several images"
    where = {s: set(groups[m.indices[s]]) for s in ("train_pool", "val", "test")}
    assert not where["train_pool"] & where["val"] and not where["train_pool"] & where["test"]
    assert not where["val"] & where["test"]
    assert not set(groups[m.indices["train"]]) & (where["val"] | where["test"])


def test_skin_profile_split_on_the_real_file(ham28):
    """The packaged skin study (synthmed run --profile skin): k = 20 per class on the real file, lesion
    groups kept whole, and even the rarest class (vasc, 47 images) tested on ≥ 10 images."""
    from synthmed.study import load_study_config

    cfg = load_study_config(profile="skin")
    assert (cfg.dataset.name, cfg.dataset.size, cfg.split.shots) == ("ham10000", 28, 20)
    m = make_split(ham28, shots=cfg.split.shots, protocol=cfg.split.protocol, seed=0,
                   val_fraction=cfg.split.val_fraction, test_fraction=cfg.split.test_fraction)
    assert set(m.counts["train"].values()) == {20}
    assert min(m.counts["test"].values()) >= 10 and m.counts["test"]["vasc"] == 14
    assert not set(ham28.groups[m.indices["train_pool"]]) & set(ham28.groups[m.indices["test"]])


def test_ham10000_as_grey_is_the_luminance_of_the_same_images(ham28, data_dir):
    from synthmed.data import load_study_dataset

    grey = load_study_dataset({"name": "ham10000", "size": 28, "classes": ["nv", "mel"], "channels": 1}, data_dir)
    assert grey.channels == 1 and grey.class_names == ("nv", "mel") and grey.name == "ham10000_28_grey"
    keep = np.isin(ham28.labels, [ham28.class_names.index("nv"), ham28.class_names.index("mel")])
    rgb = ham28.images[keep].astype(np.float64)
    expected = np.rint(rgb @ [0.299, 0.587, 0.114])
    assert np.abs(grey.images[..., 0].astype(np.float64) - expected).max() <= 1  # float32 rounding at .5
    assert (grey.groups == ham28.groups[keep]).all()  # lesion groups kept: the split stays leakage-free
    assert grey.checksum != load_study_dataset({"name": "ham10000", "size": 28, "classes": ["nv", "mel"]}, data_dir).checksum
