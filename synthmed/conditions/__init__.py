"""Downstream conditions: which images the classifier trains on (one module per condition).

Every condition is trained with the same classifier and step budget and evaluated on the same test
set, so only the training data (and, for ``real+classic``, the augmentation switch) differ.
Built in: real, real+classic, real+duplicate, all-real (no generator), synthetic, real+synthetic.
"""

from synthmed.conditions.base import (
    Condition,
    ConditionInputs,
    ConditionOptions,
    ConditionSet,
    build_condition,
    find_condition,
    get_condition,
    list_conditions,
    register_condition,
    synthetic_label_plan,
)

__all__ = ["Condition", "ConditionInputs", "ConditionOptions", "ConditionSet", "build_condition", "find_condition",
           "get_condition", "list_conditions", "register_condition", "synthetic_label_plan"]
