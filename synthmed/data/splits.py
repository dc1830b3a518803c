"""Leakage-free few-shot splits, written as a manifest every later stage consumes.

Two protocols:

- ``"fraction"`` (the mission's): exactly ``shots`` images per class for training; of the remaining
  images, per class, 10 % go to validation and 15 % to test (seeded); the rest stay in the
  training pool only.
- ``"official"`` (default when the dataset ships a split, e.g. MedMNIST): the official val/test
  are kept and the k-shot train set is drawn from the official train split, so figures compare
  with the MedMNIST benchmark tables.

Leakage rules (see ``make_split``): images that share a group id (lesion, patient) or identical
pixels form one *unit*, and a unit is never cut across splits. Where an official split already
cuts one, the val/test copies are removed (always for groups; for pixel duplicates when
``dedup=True``) and the report lists them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError, DataFormatError, DataNotFoundError, SplitError
from synthmed.utils.io import write_text_atomic

PROTOCOLS = ("official", "fraction")
SPLIT_NAMES = ("train", "val", "test", "train_pool")
PAIRS = (("train_pool", "val"), ("train_pool", "test"), ("val", "test"))  # val wins over test on a clash

# ----------------------------------------------------------------------------- manifest


class DuplicateReport(BaseModel):
    """Exact-duplicate images (same pixel bytes) and shared groups across splits.

    Attributes:
        method: how images are compared.
        shared_images: per split pair (``"train_pool/val"``), distinct images found in both.
        pairs: per split pair, ``[i, j]`` index pairs with identical pixels, found before removal.
        removed: per split (``val``, ``test``), indices dropped because they duplicate an image of
            an earlier split (only with ``dedup=True``).
        group_removed: per split, indices dropped because their group also lies in an earlier split.
        within_split: per final split, rows that repeat another row of the same split.
    """

    model_config = ConfigDict(extra="forbid")

    method: str = "sha1 of raw uint8 pixel bytes"  # exact copies only; near-duplicates are the memorization stage's job
    shared_images: dict[str, int] = Field(default_factory=dict)
    pairs: dict[str, list[list[int]]] = Field(default_factory=dict)
    removed: dict[str, list[int]] = Field(default_factory=dict)
    group_removed: dict[str, list[int]] = Field(default_factory=dict)
    within_split: dict[str, int] = Field(default_factory=dict)


class SplitManifest(BaseModel):
    """A split of one dataset: indices per split plus everything needed to check and redo it.

    Same data, arguments and seed give a byte-identical JSON file (``to_json``) and the same ``hash``.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    dataset: str
    dataset_checksum: str
    n_images: int
    class_names: list[str]
    protocol: Literal["official", "fraction"]
    seed: int
    shots: int
    val_fraction: float
    test_fraction: float
    dedup: bool
    groups: bool  # whether the data carried group ids
    indices: dict[str, list[int]]  # train, val, test, train_pool: sorted row indices into the dataset
    counts: dict[str, dict[str, int]]  # split → class name → images
    duplicates: DuplicateReport

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no whitespace): the split's content id."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the manifest atomically."""
        return write_text_atomic(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "SplitManifest":
        path = Path(path)
        if not path.exists():
            raise DataNotFoundError(f"split manifest {path} does not exist; make one with make_split / 'synthmed split'")
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as e:
            raise DataFormatError(f"{path} is not a valid split manifest ({e.errors()[0]['msg']} at {e.errors()[0]['loc']})") from None

    def check(self, data: LabeledImages) -> None:
        """Raise SplitError unless ``data`` is the dataset this manifest was made from."""
        if len(data) != self.n_images or data.checksum != self.dataset_checksum:
            raise SplitError(
                f"split manifest was made for '{self.dataset}' ({self.n_images} images, checksum "
                f"{self.dataset_checksum[:12]}) but got '{data.name}' ({len(data)} images, checksum "
                f"{data.checksum[:12]}); load the same dataset/size/classes or remake the split"
            )

    def apply(self, data: LabeledImages, *, check: bool = True) -> dict[str, LabeledImages]:
        """The splits as ``LabeledImages``: keys ``train``, ``val``, ``test``, ``train_pool``."""
        if check:
            self.check(data)
        out = {}
        for split in SPLIT_NAMES:
            sub = data.subset(np.asarray(self.indices[split], dtype=np.int64))
            out[split] = dataclasses.replace(sub, meta={**sub.meta, "split": split, "split_hash": self.hash})
        return out


# ----------------------------------------------------------------------------- helpers


def pixel_hashes(images: np.ndarray) -> np.ndarray:
    """sha1 of each image's raw bytes, ``(N,)`` str. Exact copies share a hash."""
    return np.array([hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest() for img in images])


def leakage_units(groups: np.ndarray | None, hashes: np.ndarray) -> np.ndarray:
    """Connected components of "same group" ∪ "same pixels": ``(N,)`` int unit id per image.

    Two images are in one unit when a chain of shared group ids or identical images links them,
    so keeping units whole keeps both groups and exact duplicates inside one split.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(hashes)
    keys = [np.unique(hashes, return_inverse=True)[1]]
    if groups is not None:
        keys.append(np.unique(np.asarray(groups).astype(str), return_inverse=True)[1])
    rows, cols, offset = [], [], n
    for inverse in keys:  # a bipartite graph: image nodes 0..n-1, then one node per hash / group
        rows.append(np.arange(n))
        cols.append(offset + inverse)
        offset += int(inverse.max(initial=-1)) + 1
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(offset, offset))
    _, comp = connected_components(graph, directed=False)
    return comp[:n]


def _exact_subset(sizes: list[int], k: int) -> list[int] | None:
    """Positions in ``sizes`` whose values sum to exactly ``k`` (0/1 subset sum), or None."""
    parent: dict[int, tuple[int, int] | None] = {0: None}
    for i, s in enumerate(sizes):
        for total in sorted(parent, reverse=True):
            if total + s <= k and total + s not in parent:
                parent[total + s] = (total, i)
        if k in parent:
            break
    if k not in parent:
        return None
    picks, t = [], k
    while parent[t] is not None:
        t, i = parent[t]
        picks.append(i)
    return picks


def _draw_train(cand: np.ndarray, labels, units, hashes, names, shots: int, rng) -> np.ndarray:
    """Exactly ``shots`` distinct images per class from ``cand``, taken as whole units.

    Rule: only units whose images all share one class are eligible. A unit counts its distinct
    images (an exact copy is left in the training pool, never in val/test, so it cannot leak).
    Per class, the eligible units are shuffled (seeded) and taken greedily while they fit the
    remaining need; if the greedy pass cannot hit ``shots`` exactly, a subset-sum search over the
    same shuffled order picks units that do. If no combination of whole units sums to ``shots``,
    a SplitError says so.
    """
    cand = cand[np.unique(hashes[cand], return_index=True)[1]]  # first row of each distinct image
    unit_ids, inverse = np.unique(units[cand], return_inverse=True)
    members = [np.sort(cand[inverse == u]) for u in range(len(unit_ids))]
    picked = []
    for k, name in enumerate(names):
        pure = [m for m in members if np.all(labels[m] == k)]
        order = rng.permutation(len(pure))
        need, take = shots, []
        for i in order:
            if len(pure[i]) <= need:
                take.append(i)
                need -= len(pure[i])
        if need:
            found = _exact_subset([len(pure[i]) for i in order], shots)
            if found is None:
                raise SplitError(
                    f"class '{name}' cannot give exactly shots={shots} train images as whole groups "
                    f"(group sizes {sorted(len(m) for m in pure)[-5:]}, largest shown); lower --shots (split.shots in a study YAML)"
                )
            take = [order[i] for i in found]
        picked.extend(pure[i] for i in take)
    return np.sort(np.concatenate(picked))


def _round(x: float) -> int:
    return int(np.floor(x + 0.5))  # half up, not Python's banker's rounding


def _draw_eval(rest: np.ndarray, labels, units, n_classes, val_fraction, test_fraction, rng):
    """Split ``rest`` per class into test ≈ test_fraction, val ≈ val_fraction (≥ 1 each), by whole units."""
    unit_ids, inverse = np.unique(units[rest], return_inverse=True)
    members = [rest[inverse == u] for u in range(len(unit_ids))]
    major = np.array([np.bincount(labels[m], minlength=n_classes).argmax() for m in members])
    val, test = [], []
    for k in range(n_classes):
        mine = [members[i] for i in np.flatnonzero(major == k)]
        n = sum(len(m) for m in mine)
        targets = {"test": max(1, _round(test_fraction * n)), "val": max(1, _round(val_fraction * n))}
        got = {"test": [], "val": []}
        order = list(rng.permutation(len(mine)))
        for split in ("test", "val"):
            reserve = 1 if split == "test" else 0  # keep one unit so val is never empty
            while order and len(order) > reserve and sum(map(len, got[split])) < targets[split]:
                got[split].append(mine[order.pop(0)])
        test += got["test"]
        val += got["val"]
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(val), cat(test)


def _cross_pairs(a: np.ndarray, b: np.ndarray, hashes: np.ndarray) -> tuple[list[list[int]], int]:
    """Index pairs (i in a, j in b) with identical pixels, and the number of distinct shared images."""
    by_hash: dict[str, list[int]] = {}
    for i in a:
        by_hash.setdefault(hashes[i], []).append(int(i))
    pairs, shared = [], set()
    for j in b:
        for i in by_hash.get(hashes[j], ()):
            pairs.append([i, int(j)])
            shared.add(hashes[j])
    return sorted(pairs), len(shared)


def _remove_leaks(splits: dict[str, np.ndarray], hashes, groups, dedup: bool, report: DuplicateReport) -> None:
    """Report duplicates across splits; drop from val/test what repeats an earlier split (in place)."""
    for first, second in PAIRS:
        key = f"{first}/{second}"
        report.pairs[key], report.shared_images[key] = _cross_pairs(splits[first], splits[second], hashes)
    for later, earlier in (("val", ("train_pool",)), ("test", ("train_pool", "val"))):
        before = np.concatenate([splits[e] for e in earlier])
        idx = splits[later]
        dup = np.isin(hashes[idx], hashes[before]) if dedup else np.zeros(len(idx), bool)
        grp = np.isin(groups[idx], groups[before]) if groups is not None else np.zeros(len(idx), bool)
        report.removed[later] = idx[dup].tolist()
        report.group_removed[later] = idx[grp & ~dup].tolist()
        splits[later] = idx[~(dup | grp)]


def _class_counts(idx: np.ndarray, labels: np.ndarray, names) -> dict[str, int]:
    return dict(zip(names, np.bincount(labels[idx], minlength=len(names)).tolist()))


# ----------------------------------------------------------------------------- make_split


def make_split(
    data: LabeledImages,
    *,
    shots: int = 50,
    protocol: Literal["official", "fraction"] | None = None,
    seed: int = 0,
    val_fraction: float = 0.10,
    test_fraction: float = 0.15,
    dedup: bool = True,
) -> SplitManifest:
    """Make a seeded, group-aware, duplicate-aware k-shot split of ``data``.

    Args:
        data: the dataset.
        shots: training images per class (k); every class gets exactly k.
        protocol: ``"official"`` keeps the dataset's val/test and draws train from its train split;
            ``"fraction"`` draws k per class, then val/test as fractions of the rest. Default:
            ``"official"`` when ``data.official_split`` is set, else ``"fraction"``.
        seed: the only source of randomness; same inputs + seed ⇒ identical manifest.
        val_fraction: fraction protocol: share of the remaining images (per class) for validation.
        test_fraction: fraction protocol: share of the remaining images (per class) for test.
        dedup: remove from val/test any image whose exact pixels also occur in an earlier split
            (train pool before val before test). Shared groups are always removed.

    Returns:
        The manifest; ``train_pool`` is every image allowed for training (the official train
        split, or everything outside val/test), disjoint from val/test by index, group and, with
        ``dedup``, by pixels.

    Raises:
        SplitError: a class has too few images (or groups) for the protocol; the message names it.
        ConfigError: an argument is out of range.
    """
    protocol = protocol or ("official" if data.official_split is not None else "fraction")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    if protocol == "official" and data.official_split is None:
        raise ConfigError(f"{data.name} has no official split; use protocol='fraction' (--eval fraction)")
    if not (isinstance(shots, int | np.integer) and shots >= 1):
        raise ConfigError(f"shots must be an integer ≥ 1; got {shots!r}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(f"val_fraction and test_fraction must be in (0, 1) with a sum < 1; got {val_fraction}, {test_fraction}")

    labels, names = data.labels, data.class_names
    hashes = pixel_hashes(data.images)
    groups = None if data.groups is None else np.asarray(data.groups).astype(str)
    units = leakage_units(groups, hashes)
    rng = np.random.default_rng(seed)
    report = DuplicateReport()

    if protocol == "official":
        official = np.asarray(data.official_split).astype(str)
        splits = {s: np.flatnonzero(official == o) for s, o in (("train_pool", "train"), ("val", "val"), ("test", "test"))}
        for k, n in _class_counts(splits["train_pool"], labels, names).items():
            if n < shots:
                raise SplitError(
                    f"class '{k}' has {n} images in the official train split; shots={shots} needs {shots}. "
                    f"Lower --shots (split.shots in a study YAML) or drop the class (dataset.classes)."
                )
        _remove_leaks(splits, hashes, groups, dedup, report)
        splits["train"] = _draw_train(splits["train_pool"], labels, units, hashes, names, shots, rng)
    else:
        for k, n in data.class_counts().items():
            if n < shots + 2:
                raise SplitError(
                    f"class '{k}' has {n} images; shots={shots} needs {shots} for train plus ≥1 each for "
                    f"val and test. Lower --shots (split.shots in a study YAML) or drop the class (dataset.classes)."
                )
        train = _draw_train(np.arange(len(data)), labels, units, hashes, names, shots, rng)
        rest = np.flatnonzero(~np.isin(units, units[train]))  # copies of train images stay out of val/test
        val, test = _draw_eval(rest, labels, units, len(names), val_fraction, test_fraction, rng)
        splits = {"train_pool": np.setdiff1d(np.arange(len(data)), np.concatenate([val, test])), "val": val, "test": test}
        _remove_leaks(splits, hashes, groups, dedup, report)  # finds nothing: units were kept whole
        splits["train"] = train

    counts = {s: _class_counts(splits[s], labels, names) for s in SPLIT_NAMES}
    for s in ("val", "test"):
        empty = [k for k, n in counts[s].items() if n == 0]
        if empty:
            raise SplitError(
                f"class '{empty[0]}' has no {s} images left once train and the groups/duplicates it shares "
                f"are set aside; lower --shots (split.shots in a study YAML) or drop the class (dataset.classes)."
            )
    report.within_split = {s: int(len(splits[s]) - len(np.unique(hashes[splits[s]]))) for s in SPLIT_NAMES}
    return SplitManifest(
        dataset=data.name, dataset_checksum=data.checksum, n_images=len(data), class_names=list(names),
        protocol=protocol, seed=int(seed), shots=int(shots), val_fraction=float(val_fraction),
        test_fraction=float(test_fraction), dedup=bool(dedup), groups=groups is not None,
        indices={s: sorted(int(i) for i in splits[s]) for s in SPLIT_NAMES},
        counts=counts, duplicates=report,
    )


# ----------------------------------------------------------------------------- held-out reference design

HELDOUT_SETS = ("heldout", "reference", "extractor")
DEFAULT_HELDOUT = 1000  # |H| = |R| when the pool allows; the synthetic set scored against R has |H| images
HELDOUT_MAX_SHARE = 0.25  # H and R each take at most a quarter of the eligible pool, so E keeps ≥ half


class HeldoutDesign(BaseModel):
    """Disjoint real sets carved out of a split's training pool (never val/test, never the k-shot images).

    - ``heldout`` (H): held-out real images: the "perfect generator" stand-in, the fidelity floor
      (H vs R), the class-faithfulness floor and the copy detector's null set. Seen by no model.
    - ``reference`` (R): the fidelity reference every synthetic set and the floor are compared with.
    - ``extractor`` (E): the rest of the pool, for training the domain feature extractor/classifier.

    Units (exact duplicates, shared groups) are never cut across H, R and E, and no unit of H or R
    holds a k-shot training image (a copy or same-patient image in H would fake a memorized sample).
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    split_hash: str
    seed: int
    requested: dict[str, int]  # heldout, reference as asked
    indices: dict[str, list[int]]  # heldout, reference, extractor: sorted row indices into the dataset
    counts: dict[str, dict[str, int]]  # set → class name → images
    shrunk: bool
    note: str

    @property
    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.indices.items()}

    def apply(self, data: LabeledImages) -> dict[str, LabeledImages]:
        """H, R and E as ``LabeledImages`` (keys ``heldout``, ``reference``, ``extractor``)."""
        return {k: data.subset(np.asarray(self.indices[k], dtype=np.int64)) for k in HELDOUT_SETS}


def make_heldout_design(manifest: SplitManifest, data: LabeledImages, *, n_heldout: int = DEFAULT_HELDOUT,
                        n_reference: int | None = None, seed: int | None = None) -> HeldoutDesign:
    """Carve H, R and E out of ``manifest``'s training pool, seeded and stratified by class.

    Args:
        manifest: the split (its ``train_pool`` minus its k-shot ``train`` is the eligible pool).
        data: the dataset the manifest was made from (checked).
        n_heldout: requested |H| (default 1000); each class gets its share of the eligible pool.
        n_reference: requested |R| (default = |H|, the matched-size design).
        seed: default the manifest's seed; same manifest + seed ⇒ the same design.

    Returns:
        The design. When the pool is small (H or R would exceed a quarter of the eligible pool),
        both shrink to that quarter, ``shrunk`` is True and ``note`` says what was used and that
        the fidelity intervals widen roughly as 1/√|H|.
    """
    manifest.check(data)
    n_reference = n_heldout if n_reference is None else n_reference
    if n_heldout < 2 or n_reference < 2:
        raise ConfigError(f"n_heldout and n_reference must be ≥ 2; got {n_heldout}, {n_reference}")
    seed = manifest.seed if seed is None else int(seed)
    hashes = pixel_hashes(data.images)
    groups = None if data.groups is None else np.asarray(data.groups).astype(str)
    units = leakage_units(groups, hashes)
    train = np.asarray(manifest.indices["train"], dtype=np.int64)
    pool = np.setdiff1d(np.asarray(manifest.indices["train_pool"], dtype=np.int64), train)
    tainted = np.isin(units[pool], units[train])  # duplicates / same group as a k-shot image: E only
    eligible = pool[~tainted]
    cap = int(HELDOUT_MAX_SHARE * len(eligible))
    sizes = {"heldout": min(n_heldout, cap), "reference": min(n_reference, cap)}
    if min(sizes.values()) < 2:
        raise SplitError(f"only {len(eligible)} training-pool images lie outside the k-shot draw; a held-out design "
                         f"needs ≥ 8; lower --shots (split.shots in a study YAML) or use a larger dataset")
    picked = _draw_heldout(eligible, data.labels, units, sizes, np.random.default_rng(seed))
    picked["extractor"] = np.setdiff1d(pool, np.concatenate([picked["heldout"], picked["reference"]]))
    shrunk = sizes != {"heldout": n_heldout, "reference": n_reference}
    note = (f"pool of {len(eligible)} eligible images: H and R shrunk to {sizes['heldout']} and {sizes['reference']} "
            f"(asked {n_heldout}, {n_reference}; each ≤ {HELDOUT_MAX_SHARE:.0%} of the pool); fidelity intervals widen "
            f"about √({n_heldout}/{sizes['heldout']}) = {np.sqrt(n_heldout / sizes['heldout']):.1f}×") if shrunk else ""
    names = manifest.class_names
    return HeldoutDesign(split_hash=manifest.hash, seed=seed, requested={"heldout": n_heldout, "reference": n_reference},
                         indices={k: sorted(int(i) for i in picked[k]) for k in HELDOUT_SETS},
                         counts={k: _class_counts(picked[k], data.labels, names) for k in HELDOUT_SETS},
                         shrunk=shrunk, note=note)


def _draw_heldout(eligible: np.ndarray, labels: np.ndarray, units: np.ndarray, sizes: dict[str, int],
                  rng) -> dict[str, np.ndarray]:
    """Whole units, in seeded order, into H then R while their class quota (the pool's class share) has room."""
    share = np.bincount(labels[eligible], minlength=int(labels.max()) + 1) / len(eligible)
    quota = {k: np.floor(share * n + 0.5).astype(int) for k, n in sizes.items()}  # per class, half up
    unit_ids, inverse = np.unique(units[eligible], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    by_unit = np.split(eligible[order], np.cumsum(np.bincount(inverse))[:-1])  # members of each unit
    got = {k: [] for k in sizes}
    filled = {k: np.zeros_like(quota[k]) for k in sizes}
    for u in rng.permutation(len(unit_ids)):
        members = by_unit[u]
        need = np.bincount(labels[members], minlength=len(share))
        for k in sizes:
            if np.all(filled[k] + need <= quota[k]):
                got[k].append(members)
                filled[k] += need
                break
    return {k: np.sort(np.concatenate(v)) if v else np.zeros(0, np.int64) for k, v in got.items()}
