"""``all-real``: every real image allowed for training (the split's ``train_pool``): the ceiling."""

from synthmed.conditions.base import Condition, ConditionInputs, register_condition
from synthmed.errors import SynthmedError


def _build(inp: ConditionInputs, _):
    if inp.train_pool is None:
        raise SynthmedError("condition 'all-real' needs the full real training pool (split manifest 'train_pool')")
    return inp.train_pool, len(inp.train_pool), 0


ALL_REAL = register_condition(Condition(
    name="all-real", order=3, is_ceiling=True, description="every real image allowed for training (the ceiling)",
    build=_build,
))
