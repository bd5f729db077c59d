"""Shared by the tests: tiny encoders (2 layers, hidden 32) from BERT, DistilBERT and RoBERTa configs, built
once per session, and a copy of the project to run the real snakemake in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from base64 import urlsafe_b64decode
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The tests import this checkout's package the way every job does (workflow/scripts/_common.py).
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
import _common  # noqa: F401,E402
from inference_bench.models import ModelSpec, prepare_model_dir  # noqa: E402
from inference_bench.report.readme import START  # noqa: E402

TINY_CONFIG = ROOT / "tests" / "configs" / "tiny.yaml"
README = f"# Project\n\nkept\n\n{START}\n<!-- results:end -->\n\nkept too\n"


#: An `scontrol` that answers at once that no controller is there. The SLURM executor plugin runs `scontrol show
#: config` while Snakemake loads its plugins; where SLURM's client is installed but no controller answers (as
#: before tests/test_slurm.py starts its cluster and after it stops it), that call waits 9 s, in every snakemake
#: call of every test.
NO_SLURM_CLIENT = ROOT / "tests" / "no_slurm_client"


def snakemake_env(env: dict | None = None, slurm_client: bool = False) -> dict:
    """`env` (default: this process's) for a snakemake process: with the machine's SLURM client only when
    `slurm_client`, else with NO_SLURM_CLIENT first on its PATH."""
    env = dict(os.environ if env is None else env)
    if not slurm_client:
        env["PATH"] = os.pathsep.join([str(NO_SLURM_CLIENT), env.get("PATH", "")])
    return env


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None,
              slurm_client: bool = False) -> subprocess.CompletedProcess:
    """The real snakemake, in `workdir`, on 2 cores (with the machine's SLURM client only when `slurm_client`)."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir, capture_output=True, text=True, timeout=900, env=snakemake_env(env, slurm_client),
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def fake_cpuinfo(path: Path, family_step: int = 1, bf16: bool = False, vnni: bool = False) -> Path:
    """This machine's /proc/cpuinfo as another CPU's: the family moved by `family_step` (so it differs from this
    one's, whatever this one is) and the AVX-512, VNNI and BF16 flags kept only as asked. Point
    INFERENCE_BENCH_CPUINFO at it and the pipeline, its workers included, reads that CPU instead."""
    real = Path("/proc/cpuinfo").read_text().splitlines()
    lines = []
    for line in real:
        key = line.split(":", 1)[0].strip()
        if key == "cpu family":
            line = f"cpu family\t: {int(line.split(':', 1)[1]) + family_step}"
        elif key == "flags":
            flags = [f for f in line.split(":", 1)[1].split() if not f.startswith(("avx512", "amx", "avx_vnni"))]
            flags += ["avx512f"] if bf16 or vnni else []
            flags += ["avx512_bf16"] if bf16 else []
            flags += ["avx512_vnni"] if vnni else []
            line = "flags\t\t: " + " ".join(flags)
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def record(variant, batch, p50, hardware="cpu", seq=128):
    """A benchmark job's record as run_benchmark writes it, with latencies made up around `p50`."""
    return {
        "hardware": hardware, "model": "m", "model_type": "bert", "device": "cpu", "variant": variant,
        "batch_size": batch, "sequence_length": seq, "threads": 2, "iterations": 10, "mean_ms": p50 * 1.1,
        "p50_ms": p50, "p90_ms": p50 * 1.2, "p95_ms": p50 * 1.3, "p99_ms": p50 * 1.5, "std_ms": 0.1,
        "min_ms": p50 * 0.9, "max_ms": p50 * 2, "throughput_seq_per_s": batch * 1000 / (p50 * 1.1),
        "flops_per_batch": batch * 11e9, "achieved_gflops": batch * 11e9 / p50 / 1e6,
        "peak_rss_bytes": 5e8, "peak_gpu_memory_bytes": None, "model_bytes": 2.6e8,
        "parity": {"max_abs_diff": 1e-6, "min_token_cosine": 0.9999999, "mean_token_cosine": 1.0},
        "latencies_ms": [p50] * 10, "environment": {"date": "2026-11-26T00:00:00+00:00", "threads": 2,
                                                    "cpu_model": "Test CPU", "versions": {"torch": "2.13.0"}},
    }


def make_project(root: Path, config: dict | None = None) -> Path:
    """A copy of the workflow in `root` with the tiny config (or `config`) and a README with the markers."""
    for name in ("Snakefile", "workflow", "envs"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    (root / "config").mkdir()
    (root / "config" / "config.yaml").write_text(
        yaml.safe_dump(config) if config is not None else TINY_CONFIG.read_text()
    )
    (root / "README.md").write_text(README)
    return root


def copy_project(source: Path, target: Path) -> Path:
    """A copy of a project at `target`, mtimes kept (Snakemake compares them), that the caller may change."""
    return Path(shutil.copytree(source, target, symlinks=True))


class TinyRun(NamedTuple):
    project: Path
    #: What the run printed (stdout and stderr), as a user's terminal showed it.
    terminal: str


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """The tiny config (tests/configs/tiny.yaml) built once per session by the real snakemake, from an empty
    project to its README. Never changed: a test works on copy_project(tiny_run.project, ...) or seed_model()."""
    project = make_project(tmp_path_factory.mktemp("tiny-run"))
    result = snakemake(project)
    return TinyRun(project, result.stdout + result.stderr)


TINY_MODEL = "tiny-distilbert"


def seed_model(project: Path, built: Path, tag: str | None = None) -> Path:
    """Give a project made by make_project what the tiny model's build jobs made in `built` (a finished tiny
    run): the download, the reference outputs and every ONNX artifact, with their logs and Snakemake's
    benchmark files and records, so that its first run starts at the measurements. With `tag`, that tag's
    machine record and calibration too (this machine's; not redone while the calibration settings are the tiny
    config's). For a config whose model, export and artifact settings are the tiny config's: its first run
    would have built exactly these files (every artifact, whichever variants the tag times)."""
    files = [path for folder in (Path("results/models") / TINY_MODEL, Path("logs/models") / TINY_MODEL)
             for path in sorted((built / folder).rglob("*")) if path.is_file()]
    if tag is not None:
        files += [built / "results" / tag / "machine.json", built / "results" / tag / "calibration.json",
                  built / "logs" / tag / "calibrate.log"]
    for source in files:
        target = project / source.relative_to(built)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    # Snakemake's record of each of these files (params, code, inputs: what decides whether a job runs again),
    # under the file's path in base64, and its (empty) folder of jobs left unfinished.
    seeded = {str(source.relative_to(built)) for source in files} | {f"results/models/{TINY_MODEL}/hf"}
    (project / ".snakemake" / "incomplete").mkdir(parents=True)
    for record in (built / ".snakemake" / "metadata").rglob("*"):
        name = "".join(record.relative_to(built / ".snakemake" / "metadata").parts)
        if record.is_file() and urlsafe_b64decode(name).decode() in seeded:
            target = project / ".snakemake" / "metadata" / record.relative_to(built / ".snakemake" / "metadata")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(record, target)
    return project


TINY_OVERRIDES = {
    "distilbert": {"n_layers": 2, "dim": 32, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 128},
    "bert": {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 128},
    "roberta": {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                "max_position_embeddings": 130},
}
MODEL_TYPES = tuple(TINY_OVERRIDES)


def tiny_spec(model_type: str, seed: int = 0) -> ModelSpec:
    return ModelSpec(
        name=f"tiny-{model_type}", source="random", model_type=model_type,
        config_overrides=TINY_OVERRIDES[model_type], seed=seed,
    )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("models")
    return {t: prepare_model_dir(tiny_spec(t), base / t / "hf") for t in MODEL_TYPES}


@pytest.fixture(scope="session")
def tiny_exports(tiny_models, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """onnx-fp32 export and reference outputs for each tiny model."""
    from inference_bench.build.stages import export_stage, reference_stage

    base = tmp_path_factory.mktemp("exports")
    out = {}
    for model_type, model_dir in tiny_models.items():
        onnx_path = base / model_type / "onnx-fp32.onnx"
        reference = base / model_type / "reference.npz"
        reference_stage(model_dir, reference)
        export_stage(model_dir, onnx_path, reference, opset=17, attn_implementation="eager",
                     tolerance={"max_abs_diff": 1e-3, "min_cosine": 0.99999})
        out[model_type] = {"model_dir": model_dir, "onnx": onnx_path, "reference": reference}
    return out


@pytest.fixture(scope="session")
def snakemake_api():
    """snakemake.api, imported into this process as snakemake() runs snakemake: without the machine's SLURM
    client. The import loads the executor plugins, and there the SLURM one's `scontrol show config` waits 9 s
    where no controller answers (NO_SLURM_CLIENT), once per process. A test that runs Snakemake in this process
    (loaded_workflow, the Python toolkit) asks for this first."""
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(NO_SLURM_CLIENT), path])
    try:
        import snakemake.api
    finally:
        os.environ["PATH"] = path
    return snakemake.api


@pytest.fixture(scope="session")
def loaded_workflow(snakemake_api):
    """The project's workflow as Snakemake itself parses it (default config), to ask about its rules."""
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with snakemake_api.SnakemakeApi() as api:
        workflow_api = api.workflow(snakefile=ROOT / "Snakefile", workdir=ROOT,
                                    resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings())
        yield workflow_api._workflow
