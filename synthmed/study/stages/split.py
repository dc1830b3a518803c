"""Stage ``split``: load the dataset, draw the k-shot split, write ``split.json`` and an examples grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthmed.config import StageConfig
from synthmed.data.types import LabeledImages
from synthmed.imaging import class_rows_grid, save_png
from synthmed.runs.layout import EXAMPLES_FILE, HELDOUT_FILE, SPLIT_FILE
from synthmed.study.config import SplitSpec, StudyDataset
from synthmed.study.stages.base import StageContext, stage_config
from synthmed.utils.io import write_text_atomic


class Config(StageConfig):
    dataset: StudyDataset
    split: SplitSpec
    seed: int


def make_split_into(folder: Path | None, data: LabeledImages, *, shots: int, seed: int, protocol: str | None = None,
                    **options: Any):
    """Draw the split; with a ``folder``, write ``split.json`` and ``examples.png`` there.
    Returns ``(manifest, record)``; the record is what the split stage stores."""
    from synthmed.data import make_split

    manifest = make_split(data, shots=shots, protocol=protocol, seed=seed, **options)
    if folder is not None:
        manifest.to_json(Path(folder) / SPLIT_FILE)
        train = manifest.apply(data)["train"]
        save_png(Path(folder) / EXAMPLES_FILE, class_rows_grid(train.images, train.labels, train.num_classes, 8, train.class_names), scale=2)
    return manifest, {
        "dataset_checksum": data.checksum,
        "class_names": list(data.class_names),
        "image_shape": list(data.images.shape[1:]),
        "counts": manifest.counts,
        "split_hash": manifest.hash,
        "duplicates": manifest.duplicates.model_dump(mode="json"),
    }


def heldout_design_into(folder: Path, manifest, data: LabeledImages, *, n_heldout: int) -> dict[str, Any]:
    """Carve the held-out design (H, R, E) out of the split's training pool; write ``heldout.json``
    beside ``split.json``; return what the split stage records about it (sizes, shrink note)."""
    from synthmed.data import make_heldout_design

    design = make_heldout_design(manifest, data, n_heldout=n_heldout)
    write_text_atomic(Path(folder) / HELDOUT_FILE, design.model_dump_json())
    return {"sizes": design.sizes, "requested": design.requested, "counts": design.counts, "shrunk": design.shrunk,
            "note": design.note}


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.data import load_study_dataset

    cfg = stage_config(Config, stage)
    ds, sp = cfg.dataset, cfg.split
    data = load_study_dataset(ds.model_dump(), ctx.data_dir)
    manifest, record = make_split_into(folder, data, shots=sp.shots, seed=cfg.seed,
                                       protocol=sp.protocol if sp.protocol != "auto" else None,
                                       val_fraction=sp.val_fraction, test_fraction=sp.test_fraction, dedup=sp.dedup)
    record["heldout"] = heldout_design_into(folder, manifest, data, n_heldout=sp.heldout)
    return record
