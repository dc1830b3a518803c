"""Downstream conditions: which images the classifier trains on (one module per condition).

Every condition is trained with the same classifier and step budget and evaluated on the same test
set, so only the training data (and, for ``real+classic``, the augmentation switch) differ.
Built in: real, real+classic, real+duplicate, all-real (no generator), synthetic, real+synthetic; opt-in
(not in the default study): synthetic-then-real, real+synthetic-filtered.
"""

from synthmed.conditions.base import (
    Condition,
    ConditionInputs,
    ConditionOptions,
    ConditionSet,
    Phase,
    build_condition,
    default_conditions,
    find_condition,
    get_condition,
    list_conditions,
    parse_sweep_label,
    register_condition,
    sweep_label,
    synthetic_label_plan,
)

__all__ = ["Condition", "ConditionInputs", "ConditionOptions", "ConditionSet", "Phase", "build_condition",
           "default_conditions", "find_condition", "get_condition", "list_conditions", "parse_sweep_label",
           "register_condition", "sweep_label", "synthetic_label_plan"]
