"""``real``: the k-shot real images alone: the baseline every other condition is compared with."""

from synthmed.conditions.base import Condition, register_condition

REAL = register_condition(Condition(
    name="real", order=0, is_baseline=True, description="the k-shot real images",
    build=lambda inp, _: (inp.real, len(inp.real), 0),
))
