"""The held-out reference design (H, R, E) carved out of a real PneumoniaMNIST split."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data import load_dataset, make_heldout_design, make_split
from synthmed.data.splits import pixel_hashes
from synthmed.errors import SplitError


@pytest.fixture(scope="module")
def pneumonia(data_dir):
    data = load_dataset("pneumoniamnist", data_dir=data_dir)
    return data, make_split(data, shots=50, seed=0)


def test_sets_are_disjoint_inside_the_training_pool_and_away_from_the_kshot_images(pneumonia):
    data, manifest = pneumonia
    hd = make_heldout_design(manifest, data, n_heldout=500, n_reference=400, seed=0)
    idx = {k: set(v) for k, v in hd.indices.items()}
    pool, train = set(manifest.indices["train_pool"]), set(manifest.indices["train"])
    assert hd.sizes["heldout"] == 500 and hd.sizes["reference"] == 400 and not hd.shrunk and hd.note == ""
    assert idx["heldout"] | idx["reference"] | idx["extractor"] == pool - train  # everything else goes to E
    assert not (idx["heldout"] & idx["reference"]) and not (idx["extractor"] & (idx["heldout"] | idx["reference"]))
    assert not (set().union(*idx.values()) & (train | set(manifest.indices["val"]) | set(manifest.indices["test"])))
    hashes = pixel_hashes(data.images)
    train_hashes = set(hashes[sorted(train)])
    assert not any(hashes[i] in train_hashes for i in idx["heldout"] | idx["reference"])  # no copies of k-shot images
    # stratified: H's class mix is the pool's (PneumoniaMNIST: ~26 % normal)
    pool_share = np.mean(data.labels[sorted(pool - train)] == 0)
    assert hd.counts["heldout"]["normal"] == round(pool_share * 500)
    assert hd.split_hash == manifest.hash


def test_design_is_deterministic_and_seeded(pneumonia):
    data, manifest = pneumonia
    a, b = (make_heldout_design(manifest, data, n_heldout=200) for _ in range(2))
    assert a.model_dump() == b.model_dump() and a.seed == manifest.seed
    assert make_heldout_design(manifest, data, n_heldout=200, seed=1).indices != a.indices


def _small(data, n_train: dict[int, int]):
    """A small dataset: the first n images of each class from the official train split, plus 80 val / 150 test."""
    split = data.official_split
    parts = [np.flatnonzero((split == "train") & (data.labels == c))[:n] for c, n in n_train.items()]
    parts += [np.flatnonzero(split == s)[:n] for s, n in (("val", 80), ("test", 150))]
    return data.subset(np.sort(np.concatenate(parts)))


def test_small_pool_shrinks_h_and_r_and_says_so(pneumonia):
    data, _ = pneumonia
    small = _small(data, {0: 150, 1: 400})  # BreastMNIST-sized: 550 training images, 50-shot leaves ~450
    manifest = make_split(small, shots=50, seed=0)
    hd = make_heldout_design(manifest, small, n_heldout=1000)
    eligible = len(manifest.indices["train_pool"]) - 100
    assert hd.shrunk and hd.sizes["heldout"] <= eligible // 4 and hd.sizes["reference"] <= eligible // 4
    assert hd.sizes["extractor"] >= eligible // 2
    assert "shrunk" in hd.note and "widen" in hd.note


def test_no_pool_left_raises_with_a_fix(pneumonia):
    data, _ = pneumonia
    tiny = _small(data, {0: 52, 1: 52})
    with pytest.raises(SplitError, match="lower --shots"):
        make_heldout_design(make_split(tiny, shots=50, seed=0), tiny)
