"""Which config produced a summary, and whether that config still says the same.

A summary's environment records the config files of its run (in order), the `--config` overrides, and a hash
of the settings its numbers depend on (`measured_settings`: the model's entry, the tag, and the export,
optimization, conversion, parity and benchmark sections). The README reloads those files and overrides as
they are now and hashes the same settings: a table whose config has changed since is marked stale.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence
from typing import Any

import yaml
from snakemake.utils import update_config

from inference_bench.config_validation import SCHEMA_PATH, ConfigError, validate_config
from inference_bench.environment import config_hash
from inference_bench.hardware import tag_settings

#: Config sections every measured number depends on (the targets, the regression check and the run's own
#: tag choice do not).
MEASURED_SECTIONS = ("export", "optimize", "fp16", "int8", "parity", "benchmark")


def measured_settings(config: dict[str, Any], model: str, hardware: str) -> dict[str, Any]:
    """What a summary of `model` under tag `hardware` depends on in a (validated) config."""
    models = {entry["name"]: entry for entry in config["models"]}
    return {
        "model": models.get(model),
        # A price changes what a row costs, not what it measured.
        "hardware_tag": {k: v for k, v in (tag_settings(config, hardware) or {}).items() if k != "price_per_hour"}
        or None,
        **{section: config.get(section) for section in MEASURED_SECTIONS},
    }


def settings_hash(config: dict[str, Any], model: str, hardware: str) -> str:
    return config_hash(measured_settings(config, model, hardware))


def config_sources(config_files: Sequence[str | Path], overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {"files": [Path(p).as_posix() for p in config_files], "overrides": overrides or {}}


def load_config(sources: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """The config the recorded files and overrides give today, validated and with defaults filled in."""
    config: dict[str, Any] = {}
    for path in sources.get("files", []):
        with open(path) as handle:
            update_config(config, yaml.safe_load(handle) or {})
    update_config(config, sources.get("overrides") or {})
    return validate_config(config, schema_path)


def config_staleness(environment: dict[str, Any], model: str, hardware: str, schema_path: str | Path = SCHEMA_PATH,
                     project_dir: Path = Path(".")) -> str | None:
    """Why the config of a summary no longer matches its files (None when it does, or when the summary is from
    before sources were recorded)."""
    sources, recorded = environment.get("config_sources"), environment.get("settings_hash")
    if not sources or not recorded:
        return None
    missing = [p for p in sources.get("files", []) if not (project_dir / p).is_file()]
    if missing:
        return f"its config file {missing[0]} no longer exists"
    try:
        now = settings_hash(load_config({**sources, "files": [project_dir / p for p in sources["files"]]},
                                        schema_path), model, hardware)
    except ConfigError as error:
        return f"its config no longer validates ({error})"
    if now != recorded:
        files = " + ".join(sources["files"])
        return f"the settings in {files} have changed since (settings hash {recorded}, now {now})"
    return None
