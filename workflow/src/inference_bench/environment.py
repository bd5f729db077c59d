"""What produced a result: library versions, the machine (without its hostname), the code and config."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from inference_bench.hardware import cpu_flags, cpu_model, gpu_description, machine_fingerprint

_LIBRARIES = (
    "torch",
    "transformers",
    "onnx",
    "onnxscript",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxconverter-common",
    "numpy",
    "snakemake",
)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        # onnxruntime and onnxruntime-gpu share a module; the module says which one is imported.
        import onnxruntime

        versions["onnxruntime_module"] = onnxruntime.__version__
    except ImportError:
        pass
    return versions


def git_commit(repo_dir: str | os.PathLike[str] = ".") -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


#: Package modules that only report or record: the report/ stage (summaries, tables, charts, README, targets,
#: provenance) and the core modules that check or describe a run (the environment itself, checks before a run):
#: changing them does not change a measured number, so they stay out of the measuring code's hash.
_REPORTING_PACKAGE = "report"
_REPORTING_MODULES = frozenset(
    {"integrity.py", "measure/gpu_check.py", "config_validation.py", "layout.py", "errors.py", "environment.py"}
)
#: Package modules that drive the workflow (the toolkit from Python, the terminal's filter): they neither
#: measure nor draw, so they are in neither hash.
_DRIVER_MODULES = frozenset({"toolkit.py", "terminal.py"})


def _package_modules(package: Path) -> list[tuple[str, Path]]:
    """Every module of the package by its path inside it (`measure/rounds.py`), sorted."""
    return sorted((path.relative_to(package).as_posix(), path) for path in package.rglob("*.py"))


def _reports(name: str) -> bool:
    return name.split("/")[0] == _REPORTING_PACKAGE or name in _REPORTING_MODULES


def measuring_code_hash() -> str:
    """A short digest of the code that produces a measured number: the package (but for its reporting
    modules) and the benchmark and calibration scripts. A table whose recorded hash differs from the
    checkout's was measured by other code."""
    package = Path(__file__).resolve().parent
    scripts = package.parents[1] / "scripts"
    files = [path for name, path in _package_modules(package) if not _reports(name) and name not in _DRIVER_MODULES]
    files += [scripts / "benchmark.py", scripts / "calibrate.py"]
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(package.parents[1]).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def reporting_code_hash() -> str:
    """A short digest of the code that turns results into summaries, tables, charts and the README: a
    parameter of those rules, so a change to how a table is drawn redraws it (no measuring)."""
    package = Path(__file__).resolve().parent
    scripts = package.parents[1] / "scripts"
    files = [path for name, path in _package_modules(package) if _reports(name)]
    files += [scripts / name for name in ("aggregate.py", "charts.py", "readme.py")]
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def config_hash(config: Any) -> str:
    """A short, order-independent digest of the settings a result depends on."""
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def describe_environment(device: str = "cpu", threads: int | None = None, config: Any = None) -> dict[str, Any]:
    """Everything a result depends on but its own settings. GPU facts only for `device="cuda"`, so that a
    CPU job does not import torch just to learn there is no GPU (that would inflate its peak memory)."""
    env: dict[str, Any] = {
        "versions": library_versions(),
        "os": f"{platform.system()} {platform.release()}",
        "device": device,
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "git_commit": git_commit(),
        "code_hash": measuring_code_hash(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        pass
    if device == "cuda":
        env.update(gpu_description())
    env["fingerprint"] = machine_fingerprint(device)
    if config is not None:
        env["config_hash"] = config_hash(config)
    return env
