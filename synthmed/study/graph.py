"""Stages of a study and their content-hash keys.

A stage is a unit of work with a kind (``split``, ``generator``, ``samples``...), a resolved JSON config,
and named upstream stages. Its key hashes its kind, config and the keys of its inputs, so changing
one setting changes the keys of exactly the stages downstream of it — and only those rerun.
A stage's folder is ``<stages_dir>/<kind>-<key[:12]>``; ``stage.json`` inside is written last and
its presence is the only signal that the stage is done.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmed.runs.layout import is_stage_done


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class Stage:
    kind: str  # which stage function runs it (see synthmed.study.stages.STAGE_KINDS)
    name: str  # human label, e.g. "generator cgan seed 0"
    config: dict[str, Any]  # resolved, JSON-able; part of the key
    inputs: dict[str, "Stage"] = field(default_factory=dict)  # named upstream stages
    resources: dict[str, float] = field(default_factory=lambda: {"cpus": 1})  # for distributed executors
    labels: dict[str, Any] = field(default_factory=dict)  # table coordinates (generator, condition, seed); not hashed

    @property
    def key(self) -> str:
        payload = {"kind": self.kind, "config": self.config, "inputs": {k: s.key for k, s in sorted(self.inputs.items())}}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()

    @property
    def folder_name(self) -> str:
        return f"{self.kind}-{self.key[:12]}"

    def folder(self, stages_dir: Path) -> Path:
        return Path(stages_dir) / self.folder_name

    def is_done(self, stages_dir: Path) -> bool:
        return is_stage_done(self.folder(stages_dir))


def topological_order(stages: list[Stage]) -> list[Stage]:
    """All stages reachable from ``stages`` (deduplicated by key), inputs before consumers."""
    seen: dict[str, Stage] = {}
    order: list[Stage] = []

    def visit(s: Stage) -> None:
        if s.key in seen:
            return
        for dep in s.inputs.values():
            visit(dep)
        seen[s.key] = s
        order.append(s)

    for s in stages:
        visit(s)
    return order
