"""Downstream evaluation: training sets per condition (real, synthetic, real+synthetic and controls)."""

from synthmed.evaluate.conditions import CONDITIONS, ConditionSet, build_condition, synthetic_label_plan

__all__ = ["CONDITIONS", "ConditionSet", "build_condition", "synthetic_label_plan"]
