"""The package's shape: its folders are floors of the loop, and imports only run down them (docs/ARCHITECTURE.md).

import-linter reads the contracts from pyproject.toml and checks every import in the package, those inside
functions too, so a cycle can't hide behind a late import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_part_of_the_package_is_on_a_floor():
    floors = next(c for c in contracts() if c["type"] == "layers")["layers"]
    parts = {f"playground.{p.stem if p.suffix == '.py' else p.name}" for p in (ROOT / "playground").iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").is_file())}
    assert parts == set(floors)


def test_no_import_runs_back_up_and_no_floor_has_a_cycle():
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout
