"""The run-folder contract: file names, the layout, and reading what a finished run holds.

    runs/<name>/
      manifest.json   config.yaml   results.csv   results.json   report.html   tensorboard/
      stages/<kind>-<key[:12]>/stage.json  (+ the stage's outputs: split.json, generator.pt, ...)

``synthmed.study`` writes run folders through this module; the report, the web app and the CLI read
them only through it, so a file name is spelled once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthmed.errors import DataNotFoundError
from synthmed.utils.io import write_json_atomic

# -- run level ------------------------------------------------------------------------------------
STAGES_DIR = "stages"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.yaml"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
REPORT_FILE = "report.html"

# -- stage level ----------------------------------------------------------------------------------
STAGE_FILE = "stage.json"  # written last: its presence means the stage is done
SPLIT_FILE = "split.json"
HELDOUT_FILE = "heldout.json"  # the held-out design (H, R, E) beside split.json
PROVENANCE_FILE = "provenance.json"  # which split a generator trained on (next to generator.pt)
EXAMPLES_FILE = "examples.png"
GENERATOR_FILE = "generator.pt"
CHECKPOINT_FILE = "checkpoint.pt"  # a generator's resumable checkpoint while it trains
SAMPLES_FILE = "samples.npz"
GRID_FILE = "grid.png"
CLASSIFIER_FILE = "classifier.pt"
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
FIDELITY_FILE = "fidelity.json"
CLOSEST_PAIRS_FILE = "closest_pairs.png"
TRAINING_CURVES_FILE = "metrics.csv"  # per-step training log (callbacks.CSVLogger)
GRIDS_DIR = "grids"  # progression grids of a generator

# -- table coordinates ----------------------------------------------------------------------------
CONTROL = "-"  # the "generator" coordinate of conditions that use no generator
FIDELITY = "fidelity"  # the "condition" coordinate of fidelity/memorization rows


def read_stage_record(folder: str | Path) -> dict[str, Any]:
    """The ``stage.json`` of a finished stage folder."""
    return json.loads((Path(folder) / STAGE_FILE).read_text())


def write_stage_record(folder: str | Path, record: dict[str, Any]) -> None:
    write_json_atomic(Path(folder) / STAGE_FILE, record)


def is_stage_done(folder: str | Path) -> bool:
    return (Path(folder) / STAGE_FILE).exists()


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise DataNotFoundError(f"{run_dir} is not a finished study run (no {MANIFEST_FILE}); run 'synthmed run' first")
    return json.loads(path.read_text())


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / MANIFEST_FILE, manifest)


def manifest_stages(manifest: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The manifest's entries for stages of one kind, in run order."""
    return [s for s in manifest.get("stages", []) if s.get("kind") == kind]


def stages_done(run_dir: str | Path) -> int:
    stages = Path(run_dir) / STAGES_DIR
    return sum(1 for _ in stages.glob(f"*/{STAGE_FILE}")) if stages.is_dir() else 0


def find_provenance(path: str | Path) -> dict[str, Any] | None:
    """The ``provenance.json`` of a generator folder, a samples folder or the folder holding a samples
    file / checkpoint (which split the generator trained on), or None when there is none."""
    p = Path(path)
    candidate = (p if p.is_dir() else p.parent) / PROVENANCE_FILE
    return json.loads(candidate.read_text()) if candidate.is_file() else None


def load_split_sets(split_folder: str | Path, data_dir: str | Path | None = None):
    """Reload the dataset named in a split stage and apply its manifest → ({train, val, test, train_pool}, record).

    When the split stage recorded a held-out design (``heldout.json``), the sets also hold ``heldout`` (H),
    ``reference`` (R) and ``extractor`` (E); see ``synthmed.data.make_heldout_design``."""
    from synthmed.data import HeldoutDesign, SplitManifest, load_study_dataset

    record = read_stage_record(split_folder)
    ds = record["config"]["dataset"]
    data = load_study_dataset(ds, data_dir)
    manifest = SplitManifest.from_json(Path(split_folder) / SPLIT_FILE)
    sets = manifest.apply(data)
    design_file = Path(split_folder) / HELDOUT_FILE
    if design_file.is_file():
        sets.update(HeldoutDesign.model_validate_json(design_file.read_text()).apply(data))
    return sets, record
