"""Conda environments: they parse, pin what pyproject.toml pins, and every rule names one."""

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import ROOT

ENVS = sorted((ROOT / "envs").glob("*.yaml"))


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {Requirement(r).name: str(Requirement(r).specifier) for r in requirements}


def _pip_requirements(env_file):
    env = yaml.safe_load(env_file.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return env, [Requirement(line) for line in pip if not line.startswith("-")]


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_env_parses_and_pins_match_pyproject(env_file):
    env, requirements = _pip_requirements(env_file)
    assert env["name"] and "conda-forge" in env["channels"]
    assert "python=3.11" in env["dependencies"]
    pins = _pyproject_pins()
    assert requirements
    for requirement in requirements:
        assert requirement.name in pins, f"{env_file.name}: {requirement.name} is not in pyproject.toml"
        assert str(requirement.specifier) == pins[requirement.name], f"{env_file.name}: {requirement}"


def test_cpu_and_gpu_onnxruntime_never_share_an_env():
    for env_file in ENVS:
        names = {r.name for r in _pip_requirements(env_file)[1]}
        assert not {"onnxruntime", "onnxruntime-gpu"} <= names


def test_every_rule_names_an_existing_conda_env(loaded_workflow):
    jobs = [rule for rule in loaded_workflow.rules if not rule.norun]  # `all` and `summaries` only collect
    assert len(jobs) >= 11
    # No `run:` rule: Snakemake runs one in a new Snakemake process that reads the whole workflow again (2.5 s a
    # job); every rule is a script (or shell) with its env, and the cheap ones stay where Snakemake runs.
    assert not [rule.name for rule in jobs if not (rule.script or rule.shellcmd or rule.wrapper or rule.notebook)]
    assert "variant_result" in loaded_workflow._localrules
    for rule in jobs:
        assert rule.conda_env, f"rule {rule.name} has no conda env"
        assert (Path(rule.snakefile).parent / rule.conda_env).resolve().is_file(), (rule.name, rule.conda_env)
