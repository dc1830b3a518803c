"""What the app knows about a run folder (read from its manifest) and the bounded model cache.

Everything here only reads: manifests are parsed per request (they are small) and trained models
are loaded once per checkpoint file and kept in a least-recently-used cache of bounded size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmed.errors import DataFormatError, unknown_name
from synthmed.runs import CONTROL, manifest_stages
from synthmed.serve.security import BrokenRunError, NotFoundError, read_json_inside, resolve_inside



# -- the bounded model cache ------------------------------------------------------------------------
class ModelCache:
    """Thread-safe LRU of loaded models keyed by checkpoint path and modification time.

    ``functools.lru_cache`` cannot be used: it has no per-key lock, so two requests for the same
    cold model would both load it; here the second waits for the first. A replaced checkpoint (new
    mtime) is a new key, so the stale model ages out.
    """

    def __init__(self, size: int):
        self.size = max(1, int(size))
        self._items: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self.loads = 0  # how many times a checkpoint was read from disk (tests and /api/health)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, path: Path, loader: Callable[[Path], Any]) -> Any:
        """The model at ``path``, loading it with ``loader(path)`` on a miss."""
        key = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            model = loader(path)
            with self._lock:
                self.loads += 1
                self._items[key] = model
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._loading.pop(key, None)
            return model


# -- a run, as read from its manifest --------------------------------------------------------------
@dataclass(frozen=True)
class GeneratorEntry:
    """One trained generator of a run: ``id`` is "<label>@<seed>" (e.g. "cgan@0")."""

    id: str
    label: str
    family: str
    seed: int | None
    folder: str
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClassifierEntry:
    """One trained classifier of a run: ``id`` is "<condition> [<generator>] seed <seed>"."""

    id: str
    condition: str
    generator: str
    seed: int | None
    folder: str


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's ``manifest.json`` (resolved inside the run, its stage list checked).

    Raises:
        NotFoundError: no manifest yet (the run is still being written) or a link out of the run.
        BrokenRunError: the manifest is not valid JSON or lacks what the app reads.
    """
    if not (run_dir / "manifest.json").exists():
        raise NotFoundError(f"run '{run_dir.name}' is not finished (no manifest.json yet); wait for 'synthmed run' to end")
    manifest = read_json_inside(run_dir, "manifest.json")
    try:  # everything the routes read from the manifest, checked once here instead of failing mid-request
        run_facts(manifest), run_generators(manifest), run_classifiers(manifest)
        [str(s["folder"]) for s in manifest.get("stages", [])]
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise BrokenRunError(f"run '{run_dir.name}': manifest.json lacks what the app needs ({type(e).__name__}: "
                             f"{str(e)[:60]}); re-run 'synthmed run' on it to rewrite it") from None
    return manifest


def run_facts(manifest: dict) -> dict[str, Any]:
    """Class names and image shape of a run (from its first split stage)."""
    splits = manifest_stages(manifest, "split")
    summary = splits[0]["summary"] if splits else {}
    return {"class_names": list(summary.get("class_names", [])), "image_shape": list(summary.get("image_shape", []))}


def run_generators(manifest: dict) -> list[GeneratorEntry]:
    out = []
    for s in manifest_stages(manifest, "generator"):
        label, seed = s["labels"].get("generator"), s["labels"].get("seed")
        out.append(GeneratorEntry(f"{label}@{seed}", label, s["config"]["family"], seed, s["folder"],
                                  s["config"].get("config", {})))
    return out


def run_classifiers(manifest: dict) -> list[ClassifierEntry]:
    out = []
    for s in manifest_stages(manifest, "classify"):
        lab = s["labels"]
        cid = f"{lab['condition']} [{lab.get('generator', CONTROL)}] seed {lab.get('seed')}"
        out.append(ClassifierEntry(cid, lab["condition"], lab.get("generator", CONTROL), lab.get("seed"), s["folder"]))
    return out


def find_generator(run_dir: Path, manifest: dict, name: str) -> GeneratorEntry:
    """A generator by id ("cgan@0") or by label ("cgan" = its first seed)."""
    gens = run_generators(manifest)
    for g in gens:
        if name == g.id:
            return g
    for g in gens:
        if name == g.label:
            return g
    raise NotFoundError(f"{unknown_name('generator', name, [g.id for g in gens])} in run '{run_dir.name}'")


def find_classifiers(run_dir: Path, manifest: dict, wanted: list[str] | None) -> list[ClassifierEntry]:
    """Classifiers picked by id or by condition name; none given = every condition of the first seed."""
    clfs = run_classifiers(manifest)
    if not clfs:
        raise NotFoundError(f"run '{run_dir.name}' has no trained classifiers")
    if not wanted:
        first = manifest.get("seeds", [clfs[0].seed])[0]
        return [c for c in clfs if c.seed == first]
    picked: list[ClassifierEntry] = []
    for w in wanted:
        hits = [c for c in clfs if w in (c.id, c.condition)]
        if not hits:
            known = sorted({c.condition for c in clfs} | {c.id for c in clfs})
            raise NotFoundError(f"{unknown_name('classifier or condition', w, known)} in run '{run_dir.name}'")
        picked += [c for c in hits if c not in picked]
    return picked


SAMPLE_OPTIONS = ("sampler", "steps", "guidance", "bn_stats")  # the sampling knobs a request may set


def sample_options(generator) -> set[str]:
    """Which of the optional sampling knobs (``SAMPLE_OPTIONS``, and ``progress``) this generator's ``sample`` takes.

    Read from the family's declared ``sample_knobs`` so the app never branches on a family name.
    """
    return {k for k in (*SAMPLE_OPTIONS, "progress") if k in type(generator).sample_knobs}


def family_sample_options(family: str) -> set[str]:
    """``sample_options`` for a family class (without loading a checkpoint)."""
    from synthmed.generators import get_generator_class

    return {k for k in SAMPLE_OPTIONS if k in get_generator_class(family).sample_knobs}


def _load_at(run_dir: Path, relative: str, cache: ModelCache, loader: Callable[[Path], Any]):
    """A model file of the run (resolved inside it), loaded through ``cache``; a damaged file → BrokenRunError."""
    path = resolve_inside(run_dir, relative)
    try:
        return cache.get(path, loader)
    except DataFormatError as e:  # a pickle, a truncated file: the run's fault, not the request's
        raise BrokenRunError(f"run '{run_dir.name}': {e}") from None


def load_generator_at(run_dir: Path, entry: GeneratorEntry, cache: ModelCache):
    from synthmed.generators import load_generator

    return _load_at(run_dir, f"{entry.folder}/generator.pt", cache, load_generator)


def load_classifier_at(run_dir: Path, entry: ClassifierEntry, cache: ModelCache):
    from synthmed.classify import TrainedClassifier

    return _load_at(run_dir, f"{entry.folder}/classifier.pt", cache, TrainedClassifier.load)


def resolve_class(class_names: list[str], value: str | int) -> int:
    """A class given by name or index → index; ``NotFoundError`` naming the classes otherwise."""
    # isdecimal + isascii: "²" and "٣" pass str.isdigit() but int() refuses them (or reads them as digits)
    if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdecimal()):
        k = int(value)
        if 0 <= k < len(class_names):
            return k
    elif value in class_names:
        return class_names.index(value)
    raise NotFoundError(str(unknown_name("class", str(value), class_names)) + " (a name or an index)")
