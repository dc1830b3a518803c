"""Typed, closed configs (pydantic) and YAML in/out.

Every stage config subclasses ``StageConfig`` (``extra="forbid"``): an unknown key fails and names
the closest valid one. Saved configs are always fully resolved (defaults included).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from synthmed.errors import ConfigError, DataNotFoundError

T = TypeVar("T", bound=BaseModel)


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _field_names(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """Valid field names at ``loc`` inside ``model`` (best effort, for 'did you mean')."""
    cur = model
    for part in loc[:-1]:
        if cur is None or not isinstance(part, str) or part not in getattr(cur, "model_fields", {}):
            return []
        ann = cur.model_fields[part].annotation
        cur = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return list(getattr(cur, "model_fields", {}) or [])


def format_validation_error(err: Exception, model: type[BaseModel] | None = None) -> str:
    """Turn a pydantic ValidationError into one line naming the field, the value and the fix."""
    if not isinstance(err, ValidationError):
        return str(err)
    parts = []
    for e in err.errors()[:3]:
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            known = _field_names(model, tuple(e["loc"]))
            close = difflib.get_close_matches(str(e["loc"][-1]), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            parts.append(f"unknown key '{loc}'{hint}" + (f" (valid: {', '.join(known)})" if known else ""))
        else:
            val = e.get("input")
            got = f" (got {val!r})" if val is not None and not isinstance(val, dict) else ""
            parts.append(f"'{loc}': {e['msg']}{got}")
    more = f" (+{err.error_count() - 3} more)" if err.error_count() > 3 else ""
    return "; ".join(parts) + more


def apply_tiny(data: dict[str, Any], tiny: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The one "tiny" mechanism: ``tiny: true`` in ``data`` → the component's test-sized settings
    (``tiny()``: a few steps, narrow nets) under the user's own values, which still win."""
    data = dict(data)
    return {**tiny(), **data} if data.pop("tiny", False) else data


def validate(model: type[T], data: dict[str, Any], source: str = "config") -> T:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {format_validation_error(e, model)}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def dump_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)
