"""The versions ``constraints.txt`` pins (what ``make test`` and ``make demo`` install) lie inside the ranges
``pyproject.toml`` declares (what a user's ``pip install mspclaw[...]`` accepts), and every declared
dependency is pinned, so the suite always runs on versions the package admits. The agent (the
``agent`` extra adds nothing) imports nothing beyond the base dependencies and what they require."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def declared(pyproject: str) -> list[tuple[str, Requirement]]:
    """Every requirement of the base dependencies and the extras, as ``(where, requirement)``; the
    extras that only combine other extras (``mspclaw[server]``) are left out."""
    project = tomllib.loads(pyproject)["project"]
    groups = {"dependencies": project.get("dependencies", []), **project.get("optional-dependencies", {})}
    found: list[tuple[str, Requirement]] = []
    for where, lines in groups.items():
        for line in lines:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) != canonicalize_name(project["name"]):
                found.append((where, requirement))
    return found


def pinned(constraints: str) -> dict[NormalizedName, Version]:
    """``name==version`` per line of a constraints file; comments and blank lines are skipped."""
    pins: dict[NormalizedName, Version] = {}
    for raw in constraints.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        assert separator and version, f"constraints.txt: {raw!r} is not name==version"
        pins[canonicalize_name(name.strip())] = Version(version.strip())
    return pins


def outside(requirements: list[tuple[str, Requirement]], pins: dict[NormalizedName, Version]) -> list[str]:
    """Each pin that the declared range of its package refuses, and each declared package with no pin."""
    problems = []
    for where, requirement in requirements:
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} ({where}) has no pin in constraints.txt")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside {where}'s {requirement.specifier}")
    return problems


def test_every_pin_satisfies_the_declared_range_and_every_dependency_is_pinned() -> None:
    requirements = declared((ROOT / "pyproject.toml").read_text())
    pins = pinned((ROOT / "constraints.txt").read_text())
    assert len(requirements) > 20 and len(pins) > 20  # both files were read, not an empty section
    assert outside(requirements, pins) == []


PYPROJECT = """
[project]
name = "mspclaw"
dependencies = ["pydantic>=2.7,<3"]
[project.optional-dependencies]
server = ["SQLAlchemy>=2.1,<2.2", "uvloop>=0.19; sys_platform != 'win32'"]
dev = ["mspclaw[server]"]
"""


@pytest.mark.parametrize(("constraints", "expected"), [
    ("pydantic==2.14.3\nsqlalchemy==2.1.9\nuvloop==0.23.0\n", []),
    ("pydantic==3.0.0\nsqlalchemy==2.1.9\nuvloop==0.23.0\n", ["pydantic==3.0.0 is outside dependencies's <3,>=2.7"]),
    ("pydantic==2.14.3\nSQLAlchemy==2.0.58  # too old\nuvloop==0.23.0\n",
     ["SQLAlchemy==2.0.58 is outside server's <2.2,>=2.1"]),
    ("pydantic==2.14.3\nsqlalchemy==2.1.9\n", ["uvloop (server) has no pin in constraints.txt"]),
])
def test_a_pin_outside_its_range_or_a_missing_pin_is_reported(constraints: str, expected: list[str]) -> None:
    assert outside(declared(PYPROJECT), pinned(constraints)) == expected


def installed_closure(requirements: list[Requirement]) -> set[NormalizedName]:
    """The distributions ``requirements`` bring in, following the installed packages' own requirements
    (their optional extras left out)."""
    found: set[NormalizedName] = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found or (requirement.marker is not None and not requirement.marker.evaluate({"extra": ""})):
            continue
        found.add(name)
        todo.extend(Requirement(line) for line in importlib.metadata.requires(name) or [])
    return found


# Import every module of the agent except the site integrations that need the `site` extra (their
# configuration and `mspclaw site` itself need nothing more), then list the top-level modules they loaded
# (not those the interpreter had loaded at start-up).
AGENT_IMPORTS = """
import importlib, pkgutil, sys
started = set(sys.modules)
import mspclaw.agent
for module in pkgutil.walk_packages(mspclaw.agent.__path__, "mspclaw.agent."):
    parts = module.name.split(".")
    if parts[2:3] != ["site"] or parts[3:] in ([], ["cli"], ["config"]):
        importlib.import_module(module.name)
print("\\n".join(sorted({name.partition(".")[0] for name in set(sys.modules) - started})))
"""


def test_the_agent_imports_only_the_base_dependencies() -> None:
    loaded = subprocess.run([sys.executable, "-c", AGENT_IMPORTS], capture_output=True, text=True, check=True,
                            timeout=60).stdout.split()
    assert "mspclaw" in loaded and "websockets" in loaded  # the agent's modules really were imported
    base = [requirement for where, requirement in declared((ROOT / "pyproject.toml").read_text())
            if where in ("dependencies", "agent")]
    allowed = installed_closure(base)
    providers = importlib.metadata.packages_distributions()
    outside_base = {name: providers.get(name) for name in loaded
                    if name not in sys.stdlib_module_names and name != "mspclaw"
                    and not name.startswith("_sysconfigdata")  # the standard library's sysconfig data, by platform
                    and not any(canonicalize_name(dist) in allowed for dist in providers.get(name, []))}
    assert outside_base == {}, "the agent imports these, which the base dependencies do not bring"
