"""NIH ChestX-ray14: ``Data_Entry_2017*.csv`` + PNG folders, a single-label class subset, patient groups.

``load_dataset("nih-chestxray14", path=DIR)`` reads the first ``Data_Entry_2017*.csv`` under DIR and
finds each ``Image Index`` file anywhere below DIR (the official release spreads them over
``images_001/images`` ... ``images_012/images``). Rows whose only finding is one of ``classes``
become single-label images (default: ``No Finding`` vs ``Infiltration``); ``Patient ID`` is the group.
Images are grey and squash-resized to ``size``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthmed.data.classes import single_label_subset
from synthmed.data.files import index_images, read_csv_rows, read_images, require_folder
from synthmed.data.registry import DatasetInfo, DatasetSpec, register_dataset
from synthmed.data.types import LabeledImages
from synthmed.errors import DataNotFoundError

NAME = "nih-chestxray14"
CSV_GLOB = "Data_Entry_2017*.csv"
DEFAULT_CLASSES = ("No Finding", "Infiltration")  # the common single-label few-shot pair
LICENCE = "unrestricted use, as the NIH Clinical Center states; cite Wang et al. CVPR 2017"
FINDINGS = (  # the 14 labels plus "No Finding", as spelled in Data_Entry_2017.csv
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis", "Hernia",
    "Infiltration", "Mass", "No Finding", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)


def find_table(root: Path) -> Path:
    tables = sorted(root.rglob(CSV_GLOB))
    if not tables:
        raise DataNotFoundError(f"no {CSV_GLOB} under {root}; pass path=DIR holding Data_Entry_2017.csv and the image folders")
    return tables[0]


def load_nih(root: Path | None, size: int, classes: list[str] | None = None, on_bad_image: str = "error") -> LabeledImages:
    """Load the single-label subset of ChestX-ray14 named by ``classes`` (default No Finding vs Infiltration)."""
    root = require_folder(root, NAME, "Data_Entry_2017.csv and the image folders")
    table = find_table(root)
    rows = read_csv_rows(table, ["Image Index", "Finding Labels", "Patient ID"])
    findings = [frozenset(r["Finding Labels"].split("|")) for r in rows]
    names = sorted(set(FINDINGS).union(*findings))
    col = {n: i for i, n in enumerate(names)}
    multi_hot = np.zeros((len(rows), len(names)), dtype=bool)
    for i, f in enumerate(findings):
        multi_hot[i, [col[n] for n in f]] = True
    keep, labels, class_names = single_label_subset(multi_hot, names, classes or DEFAULT_CLASSES, NAME)
    files = index_images(root)
    paths = [files.get(rows[i]["Image Index"]) for i in keep]
    if on_bad_image == "error":
        missing = [rows[i]["Image Index"] for i, p in zip(keep, paths) if p is None]
        if missing:
            raise DataNotFoundError(
                f"{len(missing)} image(s) listed in {table.name} are not under {root}, e.g. {missing[0]}; "
                f"add them, or pass on_bad_image='skip' to use only the images present"
            )
    images, kept = read_images(paths, size=size, channels=1, on_bad_image=on_bad_image)
    rows_kept = keep[kept]
    return LabeledImages(
        images=images,
        labels=labels[kept],
        class_names=class_names,
        groups=np.array([rows[i]["Patient ID"] for i in rows_kept]),
        name=f"{NAME}_{size}",
        meta={"path": str(root), "table": table.name, "licence": LICENCE, "size": size, "group": "Patient ID",
              "skipped": int(len(paths) - len(kept))},
    )


def _load(*, size: int, data_dir: Path, download: bool, path: Path | None, classes=None,
          on_bad_image: str = "error") -> LabeledImages:
    # ``download`` is accepted for a uniform call; the NIH release (42 GB) is fetched by hand.
    return load_nih(path, size, classes, on_bad_image)


def _describe(data_dir: Path) -> DatasetInfo:
    return DatasetInfo(
        name=NAME, kind="nih-csv", sizes=(), classes=DEFAULT_CLASSES, licence=LICENCE, channels=1,
        task="multi-label → single-label subset", group_column="Patient ID", needs_path=True,
        location="path=DIR holding Data_Entry_2017.csv and images_*/",
    )


register_dataset(DatasetSpec(name=NAME, info=_describe, load=_load, multilabel=True, options=("on_bad_image",)))
