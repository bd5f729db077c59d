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
from inference_bench.errors import PipelineError
from inference_bench.hardware import AUTO, AUTO_TEMPLATE, is_machine_tag
from inference_bench.variants import VARIANTS

_SOURCE_NEEDS = {"hub": "hub_id", "local": "path", "random": "model_type"}


class ConfigError(PipelineError, ValueError):
    """The config is wrong; the message names the key and the bad value."""


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator[ValidationError]:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = _copy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    # JSON Schema counts 2.0 as an integer; here it would name files b2.0_s128.json that no rule makes.
    strict_types = validator_class.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return validators.extend(validator_class, {"properties": set_defaults}, type_checker=strict_types)


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


_DefaultFillingValidator = _with_defaults(Draft7Validator)

#: The config schema of this checkout (workflow/schemas/).
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def load_schema(schema_path: str | Path) -> dict[str, Any]:
    """The schema, with the variant names of the registry as the enum of `definitions.variant`."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    schema["definitions"]["variant"]["enum"] = list(VARIANTS)
    return schema


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Fill defaults into `config` in place (keys sorted) and return it, or raise ConfigError naming the first
    problem."""
    schema = load_schema(schema_path)
    errors = sorted(_DefaultFillingValidator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_describe(errors[0], schema))
    _check_cross_references(config)
    _check_timing(config)
    ordered = _sorted_keys(config)
    config.clear()
    config.update(ordered)
    return config


def _sorted_keys(value: Any) -> Any:
    """Mappings with their keys sorted, at every depth (lists keep their order). Snakemake compares a job's
    params as written, so without this, a config file whose keys were merely reordered (by a YAML dump, an
    editor) would rerun every job."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


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
    if config["hardware"] == AUTO and AUTO_TEMPLATE not in tags:
        raise ConfigError(
            f"config error at hardware: 'auto' measures this machine with the variants of hardware_tags."
            f"{AUTO_TEMPLATE}, and there is no such tag; declare it, or name one of: {', '.join(tags)}"
        )
    if config["hardware"] not in (AUTO, *tags):
        raise ConfigError(
            f"config error at hardware: {config['hardware']!r} is not a declared hardware tag; "
            f"declared: {', '.join(tags)} (or auto, this machine under a tag of its own)"
        )
    for tag, settings in tags.items():
        if tag in layout.RESERVED_NAMES or tag == AUTO or is_machine_tag(tag):
            raise ConfigError(f"config error at hardware_tags: {tag!r} is reserved (a folder or file of results/, "
                              f"'auto', or a name of the form an auto run gives a machine)")
        for index, name in enumerate(settings["variants"]):
            devices = VARIANTS[name].devices
            if settings["device"] not in devices:
                raise ConfigError(
                    f"config error at hardware_tags.{tag}.variants[{index}]: {name!r} runs on "
                    f"{' or '.join(devices)} only, and this tag's device is {settings['device']!r}"
                )
    names = [model["name"] for model in config["models"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"config error at models: name {duplicates[0]!r} is used twice")
    for index, model in enumerate(config["models"]):
        if model["name"] in layout.RESERVED_NAMES:
            raise ConfigError(
                f"config error at models[{index}].name: {model['name']!r} is reserved (a folder or file of results/)"
            )
        needed = _SOURCE_NEEDS[model["source"]]
        if not model.get(needed):
            raise ConfigError(
                f"config error at models[{index}]: source {model['source']!r} needs {needed!r} "
                f"(model {model['name']!r})"
            )


def _check_timing(config: dict[str, Any]) -> None:
    bench = config["benchmark"]
    if bench["processes"] > bench["max_processes"]:
        raise ConfigError(
            f"config error at benchmark.processes: {bench['processes']!r} is above "
            f"benchmark.max_processes ({bench['max_processes']!r}); no comparison could meet both"
        )


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key written twice in one mapping (plain YAML lets the last one win silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"config error in {key_node.start_mark.name} line {key_node.start_mark.line + 1}: key {key!r} is "
                f"written twice in one mapping (first at line {seen[key].line + 1}); keep one"
            )
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def check_config_files(paths: list[str | Path]) -> None:
    """Read each config file strictly before Snakemake does: a YAML syntax error is reported with its file,
    line and column (Snakemake's own message points at the Snakefile), and a key written twice stops the run."""
    for path in map(Path, paths):
        if not path.is_file():
            continue  # Snakemake says it is missing
        try:
            with open(path) as handle:
                yaml.load(handle, Loader=_StrictLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
            raise ConfigError(f"config error in {path} {where}: {error.problem} (not valid YAML)") from None


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


def check_model_sources(config: dict[str, Any], project_dir: Path = Path(".")) -> None:
    """Before any job: a `source: local` directory must open and hold a config.json that parses; a
    `source: random` model_type and its config_overrides must build the model they describe. A random model
    already built from the same settings (its manifest says so) is not checked again: the check imports
    transformers, about two seconds."""
    from inference_bench.models import ModelSpec, check_local_dir, random_model_config

    for model in config["models"]:
        spec = ModelSpec.from_config(model)
        if spec.source == "local":
            check_local_dir(spec)
            _refuse_results_folder(spec, project_dir)
        elif spec.source == "random" and not _built_from(spec, project_dir):
            random_model_config(spec)


def check_labelled_dataset(config: dict[str, Any], project_dir: Path = Path(".")) -> None:
    """Before any job: `accuracy.dataset` is a readable CSV whose header has `text` and `label`, and some
    model of the run is a classifier that can read it (a random model has no tokenizer)."""
    dataset = config.get("accuracy", {}).get("dataset")
    if not dataset:
        return
    path = project_dir / Path(dataset).expanduser()
    if not path.is_file():
        raise ConfigError(f"config error at accuracy.dataset: {dataset!r} is not a file")
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = [name.strip() for name in handle.readline().strip().split(",")]
    if not {"text", "label"} <= set(header):
        raise ConfigError(f"config error at accuracy.dataset: {dataset!r} needs a header with the columns text and "
                          f"label (found: {', '.join(header) or 'nothing'})")
    readers = [m["name"] for m in config["models"]
               if m.get("task") == "sequence-classification" and m.get("source", "random") != "random"]
    if not readers:
        raise ConfigError(
            "config error at accuracy.dataset: no model of this run reads it: it needs a model with task: "
            "sequence-classification and a tokenizer (source: local or hub; a random model has no tokenizer)")


def _refuse_results_folder(spec: Any, project_dir: Path) -> None:
    """A local model inside results/ would be the pipeline's own output (Snakemake deletes an output before
    remaking it) or another model's copy: both are refused."""
    results = (project_dir / layout.RESULTS).resolve()
    source = (project_dir / Path(spec.path).expanduser()).resolve()
    if source == results or results in source.parents:
        raise ConfigError(
            f"config error at models: the local path {spec.path!r} of model {spec.name!r} is inside results/, "
            f"which the pipeline writes and deletes; point it at the model's own directory"
        )


def _built_from(spec: Any, project_dir: Path) -> bool:
    manifest = project_dir / layout.MODEL_DIR.format(model=spec.name) / layout.MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        origin = read_json(manifest).get("origin", {})
    except PipelineError:
        return False
    return origin.get("source") == "random" and origin.get("model_type") == spec.model_type and origin.get(
        "seed") == spec.seed and origin.get("overrides") == spec.config_overrides


def typed_overrides(overrides: Any) -> Any:
    """`--config` values as a config file would type them. Snakemake reads a braced value
    (`--config recommend='{max_p99_ms: 20}'`) with YAML's BaseLoader, which leaves every scalar inside a string
    ('20'); each such string is read again as YAML, so 20 is a number, null is None, true a boolean."""
    import yaml

    if isinstance(overrides, dict):
        return {key: typed_overrides(value) for key, value in overrides.items()}
    if isinstance(overrides, list):
        return [typed_overrides(value) for value in overrides]
    if isinstance(overrides, str):
        try:
            value = yaml.safe_load(overrides)
        except yaml.YAMLError:
            return overrides
        return value if isinstance(value, (int, float, bool)) or value is None else overrides
    return overrides
