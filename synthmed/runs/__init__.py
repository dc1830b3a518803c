"""The run folder: its layout and file names, stage records, the manifest and the tidy results table.

``synthmed.study`` writes through this package; ``report``, ``serve`` and ``cli`` read through it.
"""

from synthmed.runs.agreement import metric_utility_agreement
from synthmed.runs.curve import utility_curve
from synthmed.runs.layout import (
    CHECKPOINT_FILE,
    CLASSIFIER_FILE,
    CONTROL,
    FIDELITY,
    GENERATOR_FILE,
    HELDOUT_FILE,
    MANIFEST_FILE,
    PROVENANCE_FILE,
    REPORT_FILE,
    SAMPLES_FILE,
    SPLIT_FILE,
    STAGE_FILE,
    STAGES_DIR,
    find_provenance,
    is_stage_done,
    load_split_sets,
    manifest_stages,
    read_manifest,
    read_stage_record,
    stages_done,
    write_manifest,
    write_stage_record,
)
from synthmed.runs.results import (
    FIDELITY_SCALARS,
    FIDELITY_TABLE,
    FIELDS,
    HEADLINE_METRICS,
    collect_results,
    generator_verdicts,
    load_results,
    summarize_conditions,
    write_results,
)

__all__ = [
    "CHECKPOINT_FILE", "CLASSIFIER_FILE", "CONTROL", "FIDELITY", "GENERATOR_FILE", "HELDOUT_FILE", "MANIFEST_FILE", "PROVENANCE_FILE", "REPORT_FILE",
    "SAMPLES_FILE", "SPLIT_FILE", "STAGE_FILE", "STAGES_DIR", "find_provenance", "is_stage_done", "load_split_sets", "manifest_stages",
    "read_manifest", "read_stage_record", "stages_done", "write_manifest", "write_stage_record",
    "FIDELITY_SCALARS", "FIDELITY_TABLE", "FIELDS", "HEADLINE_METRICS", "collect_results", "generator_verdicts", "load_results", "metric_utility_agreement", "summarize_conditions", "utility_curve", "write_results",
]
