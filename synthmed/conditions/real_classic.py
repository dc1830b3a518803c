"""``real+classic``: the k-shot real images with classic augmentation (flips, small affine): a control."""

from synthmed.conditions.base import Condition, register_condition

REAL_CLASSIC = register_condition(Condition(
    name="real+classic", order=1, is_control=True, augment=True,
    description="the k-shot real images, classic augmentation on",
    build=lambda inp, _: (inp.real, len(inp.real), 0),
))
