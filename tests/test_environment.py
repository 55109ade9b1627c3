"""environment.yml (conda-forge, for learners) and requirements.txt (the pip path CI uses)
list the same packages."""

from __future__ import annotations

import re

import yaml

from helpers import paths

# conda-forge names that differ from PyPI's
CONDA_TO_PIP = {"python-graphviz": "graphviz"}
# What conda brings that the pip path gets from the system (scripts/setup.sh installs it with apt).
SYSTEM = {"python", "pip", "postgresql", "postgis", "graphviz"}
# Extras on the pip side are packages of their own on conda-forge.
PIP_EXTRAS = {"pypgstac[psycopg]": {"pypgstac", "psycopg"}}


def _name(spec: str) -> str:
    return re.split(r"[=<>!~ ]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pip_packages() -> set[str]:
    names: set[str] = set()
    for line in (paths.ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"requirements.txt: {line!r} is not pinned"
            name = _name(line)
            names |= PIP_EXTRAS.get(name, {name})
    return names


def conda_packages() -> tuple[set[str], set[str]]:
    """(conda-forge packages as PyPI names, the system parts) of environment.yml."""
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    conda, system = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            conda |= {_name(spec) for spec in dep["pip"]}
            continue
        name = _name(dep)
        (system if name in SYSTEM else conda).add(CONDA_TO_PIP.get(name, name))
    return conda, system


def test_same_packages_in_both_lists() -> None:
    conda, _ = conda_packages()
    pip = pip_packages()
    assert sorted(pip - conda) == [], "in requirements.txt but not in environment.yml"
    assert sorted(conda - pip) == [], "in environment.yml but not in requirements.txt"


def test_conda_brings_the_system_parts() -> None:
    _, system = conda_packages()
    assert system == SYSTEM


def test_pip_pins_match_environment_pip_section() -> None:
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    [pip_section] = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    pinned = {line.split("#")[0].strip() for line in (paths.ROOT / "requirements.txt").read_text().splitlines()}
    assert sorted(set(pip_section) - pinned) == []
