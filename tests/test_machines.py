"""Each machine measured under its own name, variants it cannot run left out at planning (hardware: auto).

Other CPUs are faked by pointing INFERENCE_BENCH_CPUINFO at an edited copy of this machine's /proc/cpuinfo
(conftest.fake_cpuinfo): the family moves, the AVX-512/VNNI/BF16 flags are set either way, so nothing here
depends on the CPU the tests run on."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, TINY_CONFIG, fake_cpuinfo, make_project, seed_model, snakemake
from inference_bench import hardware
from inference_bench.config_validation import ConfigError, validate_config
from inference_bench.hardware import (
    CPUINFO_ENV,
    AutoTagOnClusterError,
    VariantCannotRunError,
    check_tag_for_executor,
    check_variants_run_here,
    is_machine_tag,
    machine_fingerprint,
    machine_tag,
    plan_hardware,
    tag_settings,
)
from inference_bench.report.readme import results_section
from inference_bench.report.targets import Target, evaluate_targets

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def default_config(**changes) -> dict:
    return validate_config({**yaml.safe_load(yaml.safe_dump(DEFAULT_CONFIG)), **changes}, SCHEMA)


@pytest.fixture(params=[True, False], ids=["with-bf16", "without-bf16"])
def faked_cpu(request, tmp_path, monkeypatch):
    """Another CPU, with BF16 or without it."""
    path = fake_cpuinfo(tmp_path / "cpuinfo", family_step=1, bf16=request.param, vnni=request.param)
    monkeypatch.setenv(CPUINFO_ENV, str(path))
    return request.param


def test_two_machines_get_two_readable_tags(tmp_path, monkeypatch):
    tags = []
    for step in (1, 2):
        monkeypatch.setenv(CPUINFO_ENV, str(fake_cpuinfo(tmp_path / f"cpuinfo{step}", family_step=step)))
        fingerprint = machine_fingerprint("cpu")
        tag = machine_tag(fingerprint)
        assert is_machine_tag(tag) and tag.endswith(f"-{fingerprint['logical_cpus']}c-{fingerprint['id'][:6]}")
        assert f"-f{fingerprint['cpu_family']}m{fingerprint['cpu_model_number']}-" in tag
        tags.append(tag)
    assert tags[0] != tags[1]
    monkeypatch.delenv(CPUINFO_ENV)
    assert machine_tag() not in tags  # a faked CPU is never this machine, whatever it claims


def test_machine_tags_of_known_cpus():
    intel = {"id": "abcdef123456", "cpu_model": "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz",
             "cpu_vendor": "GenuineIntel", "cpu_family": "6", "cpu_model_number": "143", "logical_cpus": 224}
    assert machine_tag(intel) == "intel-xeon-platinum-8480-f6m143-224c-abcdef"
    ryzen = {"id": "0123456789ab", "cpu_model": "AMD Ryzen 9 7950X 16-Core Processor", "cpu_vendor": "AuthenticAMD",
             "cpu_family": "25", "cpu_model_number": "97", "logical_cpus": 32}
    assert machine_tag(ryzen) == "amd-ryzen-9-7950x-f25m97-32c-012345"
    assert not is_machine_tag("cpu") and not is_machine_tag("h100")


def test_auto_keeps_bf16_only_where_the_cpu_has_it(faked_cpu):
    planned = plan_hardware(default_config())
    assert planned.auto and planned.name == machine_tag() and is_machine_tag(planned.name)
    listed = DEFAULT_CONFIG["hardware_tags"]["cpu"]["variants"]
    if faked_cpu:
        assert planned.settings["variants"] == listed and planned.left_out_line() is None
    else:
        assert planned.settings["variants"] == [v for v in listed if v != "pytorch-bf16"]
        line = planned.left_out_line()
        assert line.startswith(f"Left out on this machine ({planned.name}): pytorch-bf16 (")
        assert "avx512_bf16" in line and "\n" not in line


def test_a_named_tag_is_taken_as_declared_and_its_variants_checked(faked_cpu):
    planned = plan_hardware(default_config(hardware="cpu"))
    assert planned.name == "cpu" and not planned.auto and "pytorch-bf16" in planned.settings["variants"]
    if faked_cpu:
        check_variants_run_here("cpu", planned.settings["variants"], "cpu")
    else:
        with pytest.raises(VariantCannotRunError, match=r"^hardware tag 'cpu' lists pytorch-bf16, which cannot run "
                                                        r"here: .*avx512_bf16.*--config hardware=auto"):
            check_variants_run_here("cpu", planned.settings["variants"], "cpu")


def test_auto_needs_the_cpu_tag_and_machine_tag_names_are_reserved():
    config = yaml.safe_load(yaml.safe_dump(DEFAULT_CONFIG))
    config["hardware_tags"]["my-box"] = config["hardware_tags"].pop("cpu")
    with pytest.raises(ConfigError, match="'auto' measures this machine with the variants of hardware_tags.cpu"):
        validate_config(config, SCHEMA)
    config = yaml.safe_load(yaml.safe_dump(DEFAULT_CONFIG))
    config["hardware_tags"]["amd-epyc-f26m2-2c-659312"] = config["hardware_tags"]["cpu"]
    with pytest.raises(ConfigError, match="reserved"):
        validate_config(config, SCHEMA)


def test_a_machine_tags_settings_are_the_cpu_tags():
    config = default_config()
    assert tag_settings(config, "amd-epyc-f26m2-2c-659312") == config["hardware_tags"]["cpu"]
    assert tag_settings(config, "h100") == config["hardware_tags"]["h100"]
    assert tag_settings(config, "gone") is None


def test_cpu_targets_hold_for_every_machine_tag():
    summary = pd.DataFrame([{"hardware": "amd-epyc-f25m1-2c-abcdef", "variant": "ort-fp32", "batch_size": 1,
                             "sequence_length": 128, "speedup_vs_pytorch": 2.5}])
    cpu = Target(hardware="cpu", variant="ort-fp32", batch_size=1, sequence_length=128,
                 metric="speedup_vs_pytorch", minimum=2.0)
    gpu = Target(hardware="h100", variant="ort-fp32", batch_size=1, sequence_length=128,
                 metric="speedup_vs_pytorch", minimum=2.0)
    assert [row["measured"] for row in evaluate_targets(summary, [cpu, gpu])] == [2.5]


def test_the_committed_results_sit_under_their_machines_tags():
    """The layout migration: every committed machine record lies under the tag its fingerprint names."""
    records = sorted((ROOT / "results").glob("*/machine.json"))
    assert records, "no committed machine"
    for record in records:
        fingerprint = json.loads(record.read_text())
        assert machine_tag(fingerprint) == record.parent.name
    assert not (ROOT / "results" / "cpu").exists()


def test_the_readme_shows_the_reference_machine_first(tmp_path):
    for tag in ("zz-first-f1m1-2c-aaaaaa", "aa-other-f2m2-2c-bbbbbb"):
        folder = tmp_path / "results" / tag / "m"
        folder.mkdir(parents=True)
        summary = pd.read_csv(ROOT / "results/amd-epyc-f26m2-2c-659312/distilbert-base-uncased/summary.csv")
        summary.assign(hardware=tag).to_csv(folder / "summary.csv", index=False)
    paths = sorted(str(p) for p in (tmp_path / "results").glob("*/m/summary.csv"))
    section = results_section(paths, ["m"], root=tmp_path, reference_hardware="zz-first-f1m1-2c-aaaaaa")
    first, second = section.index("**zz-first-f1m1-2c-aaaaaa** (the reference machine)"), section.index(
        "**aa-other-f2m2-2c-bbbbbb**")
    assert first < second


# --- the README's first command on machines it has never seen ------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.e2e
def test_a_new_machine_is_measured_beside_the_committed_one_and_touches_nothing_of_it(tiny_run, tmp_path):
    """Machine A (with BF16) runs first; machine B (another family, no BF16) then runs the same command: B
    lands under its own tag with pytorch-bf16 left out in one line, A's files stay byte-identical, and the
    README shows A's table first, then B's. The tiny model is built already (conftest.seed_model: the same
    model, whatever the machine): the runs measure."""
    project = tmp_path / "project"
    project.mkdir()
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["hardware"] = "auto"
    config["hardware_tags"]["cpu"]["variants"] = ["pytorch", "pytorch-bf16", "onnx-fp32"]
    config["benchmark"]["batch_sizes"] = [1]
    env_a = {**os.environ, CPUINFO_ENV: str(fake_cpuinfo(tmp_path / "a", family_step=1, bf16=True, vnni=True))}
    env_b = {**os.environ, CPUINFO_ENV: str(fake_cpuinfo(tmp_path / "b", family_step=2))}
    tags = {}
    for name, env in (("a", env_a), ("b", env_b)):
        os.environ[CPUINFO_ENV] = env[CPUINFO_ENV]
        try:
            tags[name] = machine_tag()
        finally:
            del os.environ[CPUINFO_ENV]
    config["reference_hardware"] = tags["a"]
    seed_model(make_project(project, config), tiny_run.project)

    first = snakemake(project, env=env_a)
    assert "Left out" not in first.stdout + first.stderr
    committed = _digests(project / "results" / tags["a"])
    assert any(name.endswith("summary.csv") for name in committed)

    second = snakemake(project, env=env_b)
    terminal = second.stdout + second.stderr
    left_out = [line for line in terminal.splitlines() if "Left out" in line]
    assert len(left_out) == 1 and f"({tags['b']}): pytorch-bf16 (" in left_out[0]
    assert "Traceback" not in terminal
    assert _digests(project / "results" / tags["a"]) == committed
    summary_b = pd.read_csv(project / "results" / tags["b"] / "tiny-distilbert" / "summary.csv")
    assert sorted(summary_b["variant"].unique()) == ["onnx-fp32", "pytorch"]
    readme = (project / "README.md").read_text()
    assert readme.index(f"**{tags['a']}** (the reference machine)") < readme.index(f"**{tags['b']}**")


@pytest.mark.e2e
def test_a_declared_tag_with_a_variant_this_cpu_cannot_run_is_refused_before_any_job(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["hardware_tags"]["cpu"]["variants"] = ["pytorch", "pytorch-bf16"]
    (tmp_path / "project").mkdir()
    project = make_project(tmp_path / "project", config)
    env = {**os.environ, CPUINFO_ENV: str(fake_cpuinfo(tmp_path / "cpuinfo", family_step=1))}
    refused = snakemake(project, env=env, check=False)
    terminal = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "hardware tag 'cpu' lists pytorch-bf16, which cannot run here" in terminal
    assert "Traceback" not in terminal
    assert not (project / "results" / "cpu").exists()  # nothing ran, nothing was recorded


def test_auto_is_refused_where_jobs_run_on_other_machines():
    auto, named = plan_hardware(default_config()), plan_hardware(default_config(hardware="cpu"))
    check_tag_for_executor(auto, local_exec=True)
    check_tag_for_executor(named, local_exec=False)
    with pytest.raises(AutoTagOnClusterError, match=r"^hardware: auto measures the machine snakemake runs on, not a "
                                                    r"cluster's nodes: name a tag .*--config hardware=cpu"):
        check_tag_for_executor(auto, local_exec=False)


@pytest.mark.e2e
def test_a_cluster_run_with_auto_is_refused_before_any_job(tmp_path):
    """Through the SLURM executor, where no SLURM is needed: the run's targets refuse while the DAG is built,
    before the executor submits anything."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["hardware"] = "auto"
    project = make_project(tmp_path, config)
    refused = snakemake(project, "--executor", "slurm", "--jobs", "1", check=False)
    terminal = refused.stdout + refused.stderr
    assert refused.returncode == 1, terminal[-3000:]
    assert "Error: hardware: auto measures the machine snakemake runs on, not a cluster's nodes" in terminal
    assert "Traceback" not in terminal and "submitted" not in terminal
    assert not (project / "results").exists()
