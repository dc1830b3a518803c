"""``synthetic-then-real``: pre-train the classifier on a generator's images, then fine-tune it on the
k-shot real images, inside the same total step budget as every other condition (issue 14).

Named with ASCII ``-then-`` rather than ``synthetic→real`` so the name is safe in file names, URLs and
shells. The budget (the classifier's ``max_steps``) is split between the two phases by
``pretrain_fraction`` (default 0.5); the split is recorded in the stage record. The fine-tune phase
starts from the weights the pre-training phase ended with (its best-validation weights) and gets a fresh
optimiser with its own cosine schedule over its share of the steps (see the classify stage).
"""

from __future__ import annotations

from pydantic import Field

from synthmed.conditions.base import Condition, ConditionInputs, ConditionOptions, Phase, register_condition


class SyntheticThenRealOptions(ConditionOptions):
    pretrain_fraction: float = Field(0.5, gt=0, lt=1)  # share of the step budget spent pre-training on synthetic


def _build(inp: ConditionInputs, opts: SyntheticThenRealOptions):
    return inp.real, len(inp.real), len(inp.synthetic), {"pretrain_fraction": opts.pretrain_fraction}


SYNTHETIC_THEN_REAL = register_condition(Condition(
    name="synthetic-then-real", order=6, needs_generator=True, in_default=False,
    options=SyntheticThenRealOptions, build=_build,
    description="pre-train on synthetic, fine-tune on the k-shot real images, same total steps "
                "(control to beat: real+duplicate at the same step budget)",
    phases=(
        Phase("pretrain", lambda inp, _: (inp.synthetic, 0, len(inp.synthetic)), lambda o: o.pretrain_fraction),
        Phase("finetune", lambda inp, _: (inp.real, len(inp.real), 0), lambda o: 1.0 - o.pretrain_fraction),
    ),
))
