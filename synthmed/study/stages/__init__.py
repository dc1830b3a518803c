"""The study's stage kinds: one module each (``Config`` + ``run`` + the core the CLI shares).

Adding a stage kind = one module here + its entry in ``STAGE_KINDS`` + a builder in ``expand.py``.
"""

from synthmed.study.stages import classify, extractor, fidelity, generator, reference, samples, samples_file, split
from synthmed.study.stages.base import StageContext, load_samples, load_split_sets

STAGE_KINDS = {
    "split": split,
    "generator": generator,
    "samples": samples,
    "samples_file": samples_file,
    "extractor": extractor,
    "reference": reference,
    "classify": classify,
    "fidelity": fidelity,
}
STAGE_FUNCTIONS = {kind: module.run for kind, module in STAGE_KINDS.items()}

__all__ = ["STAGE_FUNCTIONS", "STAGE_KINDS", "StageContext", "load_samples", "load_split_sets"]
