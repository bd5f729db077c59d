"""Cluster profiles: they parse, and a dry run with each plans the jobs with the hardware tag's resources."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT, make_project, snakemake

PROFILES = ROOT / "workflow" / "profiles"
DEFAULT_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def planned_jobs(text: str) -> list[dict[str, str]]:
    """Each job of a dry run's listing: its rule and its resources."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        head = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not head:
            continue
        resources = re.search(r"resources: (.*)", block)
        parsed = dict(item.split("=", 1) for item in resources.group(1).split(", ")) if resources else {}
        jobs.append({"rule": head.group(1), **parsed})
    return jobs


def test_cheap_rules_and_the_download_run_where_snakemake_runs(loaded_workflow):
    # A dry run does not mark local jobs; the parsed workflow knows them.
    assert loaded_workflow._localrules == {"download_model", "aggregate", "shape_summary", "charts", "readme",
                                           "recommend", "regression", "variant_result"}


@pytest.mark.parametrize("profile", ["local", "slurm", "kubernetes"])
def test_profiles_parse(profile):
    settings = yaml.safe_load((PROFILES / profile / "config.yaml").read_text())
    assert settings["keep-going"] is True
    assert settings.get("executor", "local") == {"local": "local"}.get(profile, profile)


@pytest.mark.parametrize(("profile", "tag"), [("slurm", "h100"), ("kubernetes", "a100"), ("slurm", "cpu")])
def test_dry_run_requests_the_tag_resources(tmp_path, profile, tag):
    project = make_project(tmp_path, DEFAULT_CONFIG)
    result = snakemake(project, "--dry-run", "--workflow-profile", str(project / "workflow/profiles" / profile),
                       "--config", f"hardware={tag}")
    jobs = planned_jobs(result.stdout)
    wanted = DEFAULT_CONFIG["hardware_tags"][tag]
    benchmarks = [job for job in jobs if job["rule"] == "benchmark"]
    shapes = len(DEFAULT_CONFIG["benchmark"]["batch_sizes"]) * len(DEFAULT_CONFIG["benchmark"]["sequence_lengths"])
    assert len(benchmarks) == shapes  # one comparison per shape, timing every variant of the tag
    results = [job for job in jobs if job["rule"] == "variant_result"]
    assert len(results) == len(wanted["variants"]) * shapes
    for job in [*benchmarks, *(j for j in jobs if j["rule"] == "calibrate")]:
        for key, value in wanted["resources"].items():
            assert job[key] == str(value), (job["rule"], key)
    if profile == "slurm":
        export = next(job for job in jobs if job["rule"] == "export_onnx")
        assert export["mem_mb"] == "16000" and export["slurm_partition"] == "cpu"
