"""Split properties on in-memory data: exact k, disjointness, groups, duplicates, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data import LabeledImages, SplitManifest, make_split
from synthmed.data.splits import pixel_hashes
from synthmed.errors import ConfigError, DataNotFoundError, SplitError

EVAL = ("val", "test")


def make_data(counts, groups_of=None, official=None, seed=0, name="toy"):
    """Distinct random 4x4 grey images, ``counts[k]`` of class k; ``groups_of(i, k)`` gives a group id."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(counts)]).astype(np.int64)
    images = rng.integers(0, 256, (len(labels), 4, 4, 1), dtype=np.uint8)
    groups = None if groups_of is None else np.array([groups_of(i, int(k)) for i, k in enumerate(labels)])
    return LabeledImages(images=images, labels=labels, class_names=tuple(f"c{k}" for k in range(len(counts))),
                         groups=groups, official_split=official, name=name)


def idx(m, split):
    return np.array(m.indices[split], dtype=np.int64)


def assert_leak_free(m, data):
    hashes = pixel_hashes(data.images)
    pool = idx(m, "train_pool")
    assert set(idx(m, "train")) <= set(pool)
    for s in EVAL:
        assert not set(pool) & set(idx(m, s))
        assert not set(hashes[pool]) & set(hashes[idx(m, s)])
        if data.groups is not None:
            assert not set(data.groups[pool]) & set(data.groups[idx(m, s)])
    assert not set(idx(m, "val")) & set(idx(m, "test"))


def test_fraction_protocol_exact_k_and_fractions():
    data = make_data([60, 100, 45])
    m = make_split(data, shots=10, seed=3)
    assert m.protocol == "fraction"
    assert m.counts["train"] == {"c0": 10, "c1": 10, "c2": 10}
    for k, n in zip(("c0", "c1", "c2"), (60, 100, 45)):
        rest = n - 10
        assert m.counts["val"][k] == int(np.floor(0.10 * rest + 0.5))
        assert m.counts["test"][k] == int(np.floor(0.15 * rest + 0.5))
        assert m.counts["train_pool"][k] == n - m.counts["val"][k] - m.counts["test"][k]
    assert_leak_free(m, data)
    assert all(m.indices[s] == sorted(m.indices[s]) for s in m.indices)


def test_groups_never_cross_splits_and_k_stays_exact():
    # groups of 1, 2 or 3 images; every group is single-class
    data = make_data([80, 90], groups_of=lambda i, k: f"g{i // (1 + i % 3)}-{k}")
    for seed in range(5):
        m = make_split(data, shots=7, seed=seed)
        assert m.counts["train"] == {"c0": 7, "c1": 7}
        assert_leak_free(m, data)
        train_groups = set(data.groups[idx(m, "train")])
        assert not train_groups & set(data.groups[np.setdiff1d(np.arange(len(data)), idx(m, "train"))])


def test_whole_groups_hit_k_exactly_when_greedy_would_overshoot():
    # class 0: groups of 3,3,2,2 images; shots=4 is only reachable as 2+2 (a greedy pass that
    # starts with a 3 is stuck at 3, so the subset-sum search must find 2+2)
    sizes = [3, 3, 2, 2]
    gid = np.repeat(np.arange(len(sizes)), sizes)
    data = make_data([sum(sizes), 12], groups_of=lambda i, k: f"a{gid[i]}" if k == 0 else f"b{i}")
    for seed in range(6):
        m = make_split(data, shots=4, seed=seed)
        assert m.counts["train"]["c0"] == 4
        assert_leak_free(m, data)


def test_groups_that_cannot_sum_to_k_raise():
    data = make_data([12, 12], groups_of=lambda i, k: f"{k}-{i // 3}")  # all groups have 3 images
    with pytest.raises(SplitError, match=r"class 'c0' cannot give exactly shots=4 .*whole groups.*lower --shots"):
        make_split(data, shots=4)


def test_same_seed_same_bytes_other_seed_other_train(tmp_path):
    data = make_data([40, 40])
    a, b = make_split(data, shots=5, seed=1), make_split(data, shots=5, seed=1)
    a.to_json(tmp_path / "a.json")
    b.to_json(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert a.hash == b.hash
    c = make_split(data, shots=5, seed=2)
    assert c.indices["train"] != a.indices["train"] and c.hash != a.hash


def test_manifest_roundtrip_and_apply(tmp_path):
    data = make_data([30, 30])
    m = make_split(data, shots=5)
    back = SplitManifest.from_json(m.to_json(tmp_path / "split.json"))
    assert back == m and back.hash == m.hash
    parts = back.apply(data)
    assert {k: len(v) for k, v in parts.items()} == {k: len(v) for k, v in m.indices.items()}
    assert np.array_equal(parts["train"].images, data.images[m.indices["train"]])
    assert parts["test"].meta["split"] == "test" and parts["test"].meta["split_hash"] == m.hash


def test_apply_to_other_data_is_refused(tmp_path):
    m = make_split(make_data([30, 30]), shots=5)
    with pytest.raises(SplitError, match="remake the split"):
        m.apply(make_data([30, 30], seed=1))
    with pytest.raises(DataNotFoundError, match="does not exist"):
        SplitManifest.from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"dataset": 1}')
    with pytest.raises(Exception, match="not a valid split manifest"):
        SplitManifest.from_json(tmp_path / "bad.json")


def with_copies(data, pairs, official=None):
    """``data`` with ``images[j] = images[i]`` for each (i, j)."""
    images = data.images.copy()
    for i, j in pairs:
        images[j] = images[i]
    return LabeledImages(images=images, labels=data.labels, class_names=data.class_names, groups=data.groups,
                         official_split=official if official is not None else data.official_split, name=data.name)


def official_toy():
    # per class: 20 train, 6 val, 6 test, interleaved by split
    split = np.array((["train"] * 20 + ["val"] * 6 + ["test"] * 6) * 2)
    return make_data([32, 32], official=split)


def test_official_protocol_finds_and_removes_duplicates():
    base = official_toy()
    # train 0 copied into val 20 and test 26; train 33 into val 52; val 21 into test 27
    data = with_copies(base, [(0, 20), (0, 26), (33, 52), (21, 27)])
    m = make_split(data, shots=5)
    assert m.protocol == "official"
    rep = m.duplicates
    # found before removal, so val 20 and test 26 (both copies of train 0) are also a val/test pair
    assert rep.shared_images == {"train_pool/val": 2, "train_pool/test": 1, "val/test": 2}
    assert rep.pairs["train_pool/val"] == [[0, 20], [33, 52]] and rep.pairs["val/test"] == [[20, 26], [21, 27]]
    assert rep.removed == {"val": [20, 52], "test": [26, 27]}
    assert m.indices["train_pool"] == np.flatnonzero(data.official_split == "train").tolist()
    assert m.counts["val"] == {"c0": 5, "c1": 5} and m.counts["test"] == {"c0": 4, "c1": 6}
    assert_leak_free(m, data)

    kept = make_split(data, shots=5, dedup=False)
    assert kept.duplicates.shared_images == rep.shared_images and kept.duplicates.removed == {"val": [], "test": []}
    assert kept.counts["val"] == {"c0": 6, "c1": 6}


def test_official_protocol_never_trains_on_two_copies_of_one_image():
    data = with_copies(official_toy(), [(i, i + 1) for i in range(0, 18, 2)])  # c0 train: 11 distinct images
    m = make_split(data, shots=10)
    hashes = pixel_hashes(data.images)[m.indices["train"]]
    assert len(set(hashes)) == len(hashes) == 20


def test_fraction_protocol_keeps_copies_in_one_split():
    data = with_copies(make_data([40, 40]), [(0, 1), (2, 3), (4, 41)])
    for seed in range(5):
        m = make_split(data, shots=5, seed=seed)
        assert m.duplicates.shared_images == {"train_pool/val": 0, "train_pool/test": 0, "val/test": 0}
        assert_leak_free(m, data)


def test_split_raises_when_class_smaller_than_shots():
    data = make_data([60, 21])
    with pytest.raises(SplitError) as err:
        make_split(data, shots=20)
    assert str(err.value) == (
        "class 'c1' has 21 images; shots=20 needs 20 for train plus ≥1 each for val and test. "
        "Lower --shots (split.shots in a study YAML) or drop the class (dataset.classes)."
    )
    with pytest.raises(SplitError, match=r"class 'c0' has 20 images in the official train split; shots=21.*Lower --shots"):
        make_split(official_toy(), shots=21)


def test_bad_arguments():
    data = make_data([30, 30])
    with pytest.raises(ConfigError, match="no official split"):
        make_split(data, protocol="official")
    with pytest.raises(ConfigError, match="protocol must be"):
        make_split(data, protocol="random")
    with pytest.raises(ConfigError, match="shots must be"):
        make_split(data, shots=0)
    with pytest.raises(ConfigError, match="sum < 1"):
        make_split(data, val_fraction=0.5, test_fraction=0.5)


def test_official_protocol_drops_val_test_images_whose_group_is_in_train():
    base = official_toy()
    groups = np.array([f"p{i}" for i in range(len(base))])
    groups[[21, 28]] = "p0"  # a patient of the official train split reappears in val and test
    data = LabeledImages(images=base.images, labels=base.labels, class_names=base.class_names, groups=groups,
                         official_split=base.official_split, name="toy")
    m = make_split(data, shots=5, dedup=False)  # group removal does not depend on dedup
    assert m.duplicates.group_removed == {"val": [21], "test": [28]}
    assert m.groups and 21 not in m.indices["val"] and 28 not in m.indices["test"]
    assert_leak_free(m, data)
