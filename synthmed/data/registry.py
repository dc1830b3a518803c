"""One table of datasets: ``list_datasets()``, ``load_dataset(name, ...)``, ``describe_dataset(data)``.

Each loader module registers its datasets here through ``register_dataset`` (the same public call
for every source), so the CLI's ``synthmed data list`` and its name checks come from this table and
nobody branches on a dataset name.

Data directory resolution, in order: the explicit ``data_dir`` argument, the environment variable
``SYNTHMED_DATA_DIR``, then medmnist's default cache (``~/.medmnist``), so files the ``medmnist``
package has already fetched are reused and synthmed's downloads land where medmnist looks too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthmed.data.classes import ALL_AS_ONE, collapse_to_one_class, select_classes
from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError, unknown_name
from synthmed.imaging import class_rows_grid, save_png, to_channels

DATA_DIR_ENV = "SYNTHMED_DATA_DIR"

# ----------------------------------------------------------------------------- table


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about one known dataset, as ``synthmed data list`` shows them.

    Attributes:
        name: the id passed to ``load_dataset``.
        kind: the source family ("medmnist", "array-file", "ham10000-folder", "nih-csv", "folder").
        sizes: image sizes (px) that can be loaded; empty when any size can be resized to.
        classes: class names (the default subset for multi-label sources).
        licence: licence of the data as its publisher states it.
        channels: 1 (grey), 3 (RGB) or 0 when it depends on the files.
        task: the source task ("binary-class", "multi-class", "multi-label, ...").
        group_column: which id groups images (lesion, patient) or ``None``.
        needs_path: True when the data is read from a folder given by ``path=``.
        present: whether the files for ``size`` were found locally.
        location: where they were found or are expected.
    """

    name: str
    kind: str
    sizes: tuple[int, ...]
    classes: tuple[str, ...]
    licence: str
    channels: int = 0
    task: str = ""
    group_column: str | None = None
    needs_path: bool = False
    present: bool = False
    location: str = ""


# A loader gets the resolved data dir and the caller's options; it returns LabeledImages.
Loader = Callable[..., LabeledImages]
# An info function gets the resolved data dir and returns the DatasetInfo (presence included).
InfoFn = Callable[[Path], DatasetInfo]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: how to describe it and how to load it.

    ``multilabel`` loaders interpret ``classes`` themselves (a subset of findings turned into
    single-label classes); for the others the registry applies ``select_classes`` afterwards.
    """

    name: str
    info: InfoFn
    load: Loader
    multilabel: bool = False
    options: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the table; a second dataset with the same name fails at import."""
    if spec.name != spec.name.strip() or not spec.name or "/" in spec.name:
        raise ValueError(f"dataset name {spec.name!r} must be non-empty, unpadded and without '/'")
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset '{spec.name}' is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _specs() -> dict[str, DatasetSpec]:
    # Loader modules register on import; importing here (not at module top) avoids an import cycle.
    from synthmed.data import folder, ham10000, medmnist, nih_chestxray  # noqa: F401

    return _REGISTRY


def dataset_names() -> list[str]:
    return sorted(_specs())


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding dataset files: ``data_dir``, else $SYNTHMED_DATA_DIR, else ``~/.medmnist``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    from medmnist.info import DEFAULT_ROOT

    return Path(DEFAULT_ROOT).expanduser()


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[DatasetInfo]:
    """Every known dataset with its facts and whether its files are present in the data dir."""
    root = resolve_data_dir(data_dir)
    return [spec.info(root) for _, spec in sorted(_specs().items())]


# ----------------------------------------------------------------------------- loading


def load_dataset(
    name: str,
    *,
    size: int = 28,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    classes: str | Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    channels: int | None = None,
    on_bad_image: str = "error",
) -> LabeledImages:
    """Load a dataset by name into one ``LabeledImages``.

    Args:
        name: a registered name (see ``list_datasets()``), e.g. ``"pneumoniamnist"``, ``"ham10000"``,
            ``"nih-chestxray14"`` or ``"folder"``.
        size: image side in px (MedMNIST: 28/64/128/224; array files: the sizes present; folder
            sources resize any image to this size).
        data_dir: folder of dataset files; default $SYNTHMED_DATA_DIR, else ``~/.medmnist`` (medmnist's cache).
        download: download a missing MedMNIST file (MD5-checked) unless $SYNTHMED_OFFLINE is set
            (``synthmed run --offline``); ``False`` never downloads. Other sources are never downloaded.
        classes: ``None`` for the dataset's default classes, a list of class names to keep
            (case-insensitive; labels are renumbered in the given order), or ``"all-as-one"`` to
            collapse every image into one class (the unconditional case; multi-label sources
            collapse their default subset).
        path: the folder of a folder-based source (HAM10000 original layout, NIH, class folders).
        channels: 1 (grey) or 3 (RGB). Folder sources read their files so; every other source is
            converted after loading (RGB → grey by ITU-R 601 luminance, grey → RGB by repetition).
            ``None`` keeps the source's own channels (folder sources: RGB if any image is colour).
        on_bad_image: ``"error"`` (default) stops at the first unreadable or missing image file,
            naming it; ``"skip"`` leaves it out with a warning giving the count.

    Returns:
        The images (uint8 NHWC), labels, class names, groups and official split when known.

    Raises:
        UnknownNameError: ``name`` is not registered (the message suggests the closest name).
        DataNotFoundError: the file or folder is missing (the message says how to get it).
        DataFormatError: the file is there but its content is wrong.
    """
    specs = _specs()
    if name not in specs:
        raise unknown_name("dataset", name, specs)
    if on_bad_image not in ("error", "skip"):
        raise ConfigError(f"on_bad_image must be 'error' or 'skip'; got {on_bad_image!r}")
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB); got {channels!r}")
    if isinstance(classes, str) and classes != ALL_AS_ONE:
        classes = [classes]  # one name; not split on commas, since names like "normal, benign" hold them
    spec = specs[name]
    wanted = None if classes == ALL_AS_ONE else classes
    options = {"channels": channels, "on_bad_image": on_bad_image}
    data = spec.load(
        size=size,
        data_dir=resolve_data_dir(data_dir),
        download=download,
        path=None if path is None else Path(path).expanduser(),
        classes=wanted if spec.multilabel else None,
        **{k: v for k, v in options.items() if k in spec.options},
    )
    if channels is not None and "channels" not in spec.options and data.channels != channels:
        data = with_channels(data, channels)
    if wanted is not None and not spec.multilabel:
        data = select_classes(data, wanted)
    if classes == ALL_AS_ONE:
        data = collapse_to_one_class(data)
    return data


def with_channels(data: LabeledImages, channels: int) -> LabeledImages:
    """The same images converted to ``channels`` (1 grey, 3 RGB); everything else kept."""
    return dataclasses.replace(data, images=to_channels(data.images, channels),
                               name=f"{data.name}_{'grey' if channels == 1 else 'rgb'}",
                               meta={**data.meta, "converted_to_channels": channels})


def load_study_dataset(ds: Mapping, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> LabeledImages:
    """Load the dataset a study config names (``ds``: its ``dataset`` section as a dict: name, size, path,
    classes, channels, download). Every stage and command that reloads a study's data goes through here,
    so they all see the same images. ``download`` overrides the config's (the web app never downloads)."""
    return load_dataset(ds["name"], size=ds.get("size", 28), data_dir=data_dir,
                        download=ds.get("download", True) if download is None else download,
                        classes=ds.get("classes"), path=ds.get("path"), channels=ds.get("channels"))


# ----------------------------------------------------------------------------- describing


def describe_dataset(data: LabeledImages) -> dict:
    """Counts per split and class, plus shape facts, as a JSON-ready dict.

    The splits are the official ones when the dataset ships them, else a single ``"all"``.
    """
    splits = data.official_split if data.official_split is not None else np.full(len(data), "all")
    per_split = {}
    for split in [s for s in ("train", "val", "test", "all") if s in set(splits.tolist())]:
        counts = np.bincount(data.labels[splits == split], minlength=data.num_classes)
        per_split[split] = {n: int(c) for n, c in zip(data.class_names, counts)}
    return {
        "name": data.name,
        "images": len(data),
        "image_size": data.image_size,
        "channels": data.channels,
        "classes": list(data.class_names),
        "counts": per_split,
        "total_per_class": data.class_counts(),
        "groups": None if data.groups is None else int(len(np.unique(data.groups))),
        "checksum": data.checksum,
    }


def save_examples_grid(
    data: LabeledImages, path: str | os.PathLike, *, per_class: int = 8, seed: int = 0, scale: int = 2
) -> Path:
    """Write a PNG with one row per class of ``per_class`` randomly drawn examples (atomically).

    Args:
        data: the dataset.
        path: the PNG file to write.
        per_class: images per row.
        seed: which examples are drawn.
        scale: nearest-neighbour upscaling so 28 px images stay visible.
    """
    rng = np.random.default_rng(seed)
    picks = []
    for k in range(data.num_classes):
        idx = np.flatnonzero(data.labels == k)
        picks.append(np.sort(rng.choice(idx, min(per_class, len(idx)), replace=False)))
    idx = np.concatenate(picks).astype(np.int64)
    grid = class_rows_grid(np.asarray(data.images[idx]), data.labels[idx], data.num_classes, per_class, data.class_names)
    return save_png(path, grid, scale=scale)
