"""``synthetic``: a generator's images only (no real image)."""

from synthmed.conditions.base import Condition, register_condition

SYNTHETIC = register_condition(Condition(
    name="synthetic", order=4, needs_generator=True, description="synthetic images only",
    build=lambda inp, _: (inp.synthetic, 0, len(inp.synthetic)),
))
