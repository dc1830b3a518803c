"""``real+synthetic``: the k-shot real images plus a generator's images (count or ratio, balanced)."""

from synthmed.conditions.base import Condition, ConditionInputs, concat_images, register_condition


def _build(inp: ConditionInputs, _):
    syn = inp.synthetic
    return concat_images(inp.real, syn.images, syn.labels), len(inp.real), len(syn)


REAL_SYNTHETIC = register_condition(Condition(
    name="real+synthetic", order=5, needs_generator=True, ratio_sweep=True,
    description="k-shot real + synthetic (count or ratio, balanced)", build=_build,
))
