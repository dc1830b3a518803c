"""Property tests (hypothesis) for the split invariants on small generated datasets.

Every dataset hypothesis draws has a few classes, images from a small pool of pixel patterns (so
exact duplicates, also across classes, are common), optional group ids (lesions/patients, several
images per group) and optionally an official train/val/test split. Whenever ``make_split`` accepts
it, the manifest must satisfy the invariants below; when it refuses, it must be a SplitError.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from synthmed.data import LabeledImages, make_split  # noqa: E402
from synthmed.data.splits import pixel_hashes  # noqa: E402
from synthmed.errors import SplitError  # noqa: E402

EVAL = ("train_pool", "val", "test")


@st.composite
def datasets(draw, official: bool = False):
    """A small LabeledImages: 2-4 classes, 2x2 grey images from a pool of patterns, optional groups."""
    n_classes = draw(st.integers(2, 4))
    per_class = draw(st.lists(st.integers(6, 20), min_size=n_classes, max_size=n_classes))
    labels = np.repeat(np.arange(n_classes), per_class)
    n = len(labels)
    pool = draw(st.integers(max(per_class) // 2 + 1, 3 * max(per_class)))  # small pools ⇒ exact duplicates
    # patterns of class k are k*1000 + (0..pool-1): duplicates within a class, plus a few copied across classes
    patterns = labels * 1000 + np.array(draw(st.lists(st.integers(0, pool - 1), min_size=n, max_size=n)))
    for i, j in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3)):
        patterns[i] = patterns[j]  # the same image under two labels (a labelling conflict)
    images = np.stack([np.full((2, 2, 1), p % 256, np.uint8) for p in patterns])
    images[:, 0, 0, 0] = (patterns // 256).astype(np.uint8)  # unique image per pattern value
    groups = None
    if draw(st.booleans()):  # group ids within a class, 1-3 images per group
        sizes = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
        gid, groups = 0, np.empty(n, dtype=object)
        for k in range(n_classes):
            idx = list(np.flatnonzero(labels == k))
            for size in sizes:
                if not idx:
                    break
                for i in idx[:size]:
                    groups[i] = f"g{gid}"
                idx, gid = idx[size:], gid + 1
        groups = groups.astype(str)
    split = None
    if official:  # one official split per image pattern (group members may still straddle), plus a few leaks
        names = ["train", "train", "val", "test"]
        by_pattern = draw(st.lists(st.sampled_from(names), min_size=len(set(patterns)), max_size=len(set(patterns))))
        split = np.array(by_pattern)[np.unique(patterns, return_inverse=True)[1]]
        for i, name in draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(names)), max_size=3)):
            split[i] = name  # an exact copy in two official splits
    return LabeledImages(images=images, labels=labels.astype(np.int64), class_names=tuple(f"c{k}" for k in range(n_classes)),
                         groups=groups, official_split=split, name="generated")


def _split_or_none(data, **kw):
    try:
        return make_split(data, **kw)
    except SplitError:
        return None  # a refusal is allowed (too few images/units); the refusal itself is the contract


def _check_invariants(data, m, shots):
    idx = {s: np.asarray(m.indices[s], dtype=np.int64) for s in ("train", *EVAL)}
    hashes = pixel_hashes(data.images)
    # k-shot: exactly `shots` distinct images per class in train
    assert np.bincount(data.labels[idx["train"]], minlength=data.num_classes).tolist() == [shots] * data.num_classes
    assert len(set(hashes[idx["train"]])) == len(idx["train"])
    assert set(idx["train"]) <= set(idx["train_pool"])
    # disjoint by index, by exact pixels (duplicates removed) and by group, pairwise over pool/val/test
    for i, a in enumerate(EVAL):
        for b in EVAL[i + 1:]:
            assert not set(idx[a]) & set(idx[b]), (a, b)
            assert not set(hashes[idx[a]]) & set(hashes[idx[b]]), (a, b)
            if data.groups is not None:
                assert not set(data.groups[idx[a]]) & set(data.groups[idx[b]]), (a, b)
    # every class is evaluated
    for s in ("val", "test"):
        assert all(n >= 1 for n in m.counts[s].values())
    # counts match the indices
    for s, per_class in m.counts.items():
        assert sum(per_class.values()) == len(idx[s])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(), shots=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_fraction_split_invariants(data, shots, seed):
    m = _split_or_none(data, shots=shots, seed=seed, protocol="fraction")
    if m is None:
        return
    _check_invariants(data, m, shots)
    # the rest is all in use: every image is in the pool, val or test, except val/test copies removed
    assert len(m.indices["train_pool"]) + len(m.indices["val"]) + len(m.indices["test"]) == len(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(official=True), shots=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_official_split_invariants(data, shots, seed):
    m = _split_or_none(data, shots=shots, seed=seed, protocol="official")
    if m is None:
        return
    _check_invariants(data, m, shots)
    split = data.official_split
    assert set(split[m.indices["train_pool"]]) <= {"train"}
    assert set(split[m.indices["val"]]) <= {"val"} and set(split[m.indices["test"]]) <= {"test"}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(), shots=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_same_seed_same_manifest(data, shots, seed):
    a = _split_or_none(data, shots=shots, seed=seed, protocol="fraction")
    b = _split_or_none(data, shots=shots, seed=seed, protocol="fraction")
    assert (a is None) == (b is None)
    if a is not None:
        assert a.hash == b.hash and a.model_dump_json() == b.model_dump_json()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(), seed=st.integers(0, 2**16))
def test_a_refusal_is_a_split_error_never_a_crash(data, seed):
    """Too many shots for the smallest class must be refused with a SplitError naming the class."""
    too_many = int(np.bincount(data.labels).min())
    with pytest.raises(SplitError, match="class 'c"):
        make_split(data, shots=too_many, seed=seed, protocol="fraction")
