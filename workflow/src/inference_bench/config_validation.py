"""Validate the workflow config against its JSON schema, fill defaults, and say exactly what is wrong."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator, ValidationError, validators

from inference_bench import layout
from inference_bench.artifacts import read_json
from inference_bench.variants import VARIANTS

_SOURCE_NEEDS = {"hub": "hub_id", "local": "path", "random": "model_type"}


class ConfigError(ValueError):
    """The config is wrong; the message names the key and the bad value."""


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator[ValidationError]:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = _copy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


_DefaultFillingValidator = _with_defaults(Draft7Validator)


def load_schema(schema_path: str | Path) -> dict[str, Any]:
    """The schema, with the variant names of the registry as the enum of `definitions.variant`."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    schema["definitions"]["variant"]["enum"] = list(VARIANTS)
    return schema


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Fill defaults into `config` in place and return it, or raise ConfigError naming the first problem."""
    schema = load_schema(schema_path)
    errors = sorted(_DefaultFillingValidator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_describe(errors[0], schema))
    _check_cross_references(config)
    return config


def key_path(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: ValidationError, schema: dict[str, Any]) -> str:
    where = key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        hints = []
        for key in unexpected:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        scope = "at the top level" if where == "(top level)" else f"in {where}"
        return f"config error: unknown key {', '.join(hints)} {scope}; allowed: {', '.join(allowed)}"
    return f"config error at {where}: {error.instance!r} is not valid: {error.message}"


def _check_cross_references(config: dict[str, Any]) -> None:
    tags = config["hardware_tags"]
    if config["hardware"] not in tags:
        raise ConfigError(
            f"config error at hardware: {config['hardware']!r} is not a declared hardware tag; "
            f"declared: {', '.join(tags)}"
        )
    names = [model["name"] for model in config["models"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"config error at models: name {duplicates[0]!r} is used twice")
    for index, model in enumerate(config["models"]):
        needed = _SOURCE_NEEDS[model["source"]]
        if not model.get(needed):
            raise ConfigError(
                f"config error at models[{index}]: source {model['source']!r} needs {needed!r} "
                f"(model {model['name']!r})"
            )


def check_sequence_lengths(config: dict[str, Any], project_dir: Path = Path(".")) -> None:
    """Refuse sequence lengths beyond a model's positions, for every model already downloaded (its manifest
    records the architecture; reading it is cheap). The benchmark job checks models not yet downloaded."""
    for model in config["models"]:
        manifest = project_dir / layout.MODEL_DIR.format(model=model["name"]) / layout.MANIFEST_NAME
        if not manifest.is_file():
            continue
        limit = read_json(manifest).get("architecture", {}).get("max_positions")
        too_long = [length for length in config["benchmark"]["sequence_lengths"] if limit and length > limit]
        if too_long:
            raise ConfigError(
                f"config error at benchmark.sequence_lengths: {too_long[0]} exceeds the "
                f"max_position_embeddings ({limit}) of model {model['name']!r}; use at most {limit}"
            )
