"""The import contract in pyproject.toml ([tool.importlinter]): imports point down the layers only,
and nothing but the CLI imports the study runner. Checked with import-linter (grimp's import graph)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="pip install 'synthmed[dev]' (import-linter)")
ROOT = Path(__file__).resolve().parents[2]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_import_contracts_are_kept():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "broken" not in res.stdout.lower().replace("0 broken", "")


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract can fail: a copy of the package where the data layer imports the study runner."""
    shutil.copytree(ROOT / "synthmed", tmp_path / "synthmed", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    types = tmp_path / "synthmed" / "data" / "types.py"
    types.write_text(types.read_text() + "\nimport synthmed.study.runner  # noqa: planted upward import\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "synthmed.data is not allowed to import synthmed.study" in res.stdout
    assert "synthmed.data.types -> synthmed.study.runner" in res.stdout


def test_the_training_loop_may_not_import_the_trainers(tmp_path):
    """synthmed.loop sits below generators and classify: the loop importing a family breaks the contract."""
    shutil.copytree(ROOT / "synthmed", tmp_path / "synthmed", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    loop = tmp_path / "synthmed" / "loop.py"
    loop.write_text(loop.read_text() + "\nimport synthmed.generators.training  # noqa: planted upward import\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "synthmed.loop -> synthmed.generators.training" in res.stdout
