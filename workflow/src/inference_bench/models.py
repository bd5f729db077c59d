"""Hugging Face model directories from the Hub, a local folder or a seeded random initialisation."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from inference_bench.artifacts import file_sha256, read_json, respect_umask, write_json_atomic
from inference_bench.errors import PipelineError, first_line
from inference_bench.layout import MANIFEST_NAME

log = logging.getLogger(__name__)

ModelSource = Literal["hub", "local", "random"]

#: Files a model directory may hold: weights as safetensors only (never a pickle), config, tokenizer.
ALLOWED_FILE_PATTERNS: tuple[str, ...] = (
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)


class ModelSourceError(PipelineError, RuntimeError):
    """The configured model cannot be obtained; the message says which model and what to do."""


#: What the model is for: sentence embeddings from its last hidden state (the encoder alone), or a label per
#: text from a classification head on top of it (AutoModelForSequenceClassification).
Task = Literal["feature-extraction", "sequence-classification"]
TASKS: tuple[Task, ...] = ("feature-extraction", "sequence-classification")
CLASSIFICATION: Task = "sequence-classification"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of `models:` in the config."""

    name: str
    source: ModelSource = "random"
    hub_id: str | None = None
    revision: str = "main"
    path: str | None = None
    model_type: str | None = None
    config_overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    task: Task = "feature-extraction"
    num_labels: int = 2  # random classifiers only: a checkpoint's head says how many labels it has

    def __post_init__(self) -> None:
        if self.source == "hub" and not self.hub_id:
            raise ModelSourceError(f"model {self.name!r}: source 'hub' needs 'hub_id'")
        if self.source == "local" and not self.path:
            raise ModelSourceError(f"model {self.name!r}: source 'local' needs 'path'")
        if self.source == "random" and not self.model_type:
            raise ModelSourceError(f"model {self.name!r}: source 'random' needs 'model_type'")
        if self.task not in TASKS:
            raise ModelSourceError(f"model {self.name!r}: unknown task {self.task!r}; known: {', '.join(TASKS)}")

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> "ModelSpec":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in entry.items() if key in known})


@dataclass(frozen=True)
class ArchitectureFacts:
    """What the optimizer and the FLOP count need, read from the model's own config."""

    model_type: str
    num_layers: int
    num_heads: int
    hidden_size: int
    intermediate_size: int
    max_positions: int
    vocab_size: int
    pad_token_id: int

    @classmethod
    def from_hf_config(cls, config: Any) -> "ArchitectureFacts":
        intermediate = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None)
        return cls(
            model_type=config.model_type,
            num_layers=int(config.num_hidden_layers),
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            intermediate_size=int(intermediate or 4 * config.hidden_size),
            max_positions=int(config.max_position_embeddings),
            vocab_size=int(config.vocab_size),
            pad_token_id=int(config.pad_token_id if config.pad_token_id is not None else 0),
        )

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> "ArchitectureFacts":
        """From the manifest download_model wrote (no torch import: transformers' configs pull torch in,
        which would inflate an ONNX Runtime job's memory), else from config.json through transformers."""
        manifest = Path(model_dir) / MANIFEST_NAME
        if manifest.is_file():
            recorded = read_json(manifest).get("architecture")
            if recorded:
                return cls(**recorded)
        from transformers import AutoConfig

        return cls.from_hf_config(AutoConfig.from_pretrained(model_dir, trust_remote_code=False))


def prepare_model_dir(spec: ModelSpec, out_dir: str | Path) -> Path:
    """Fill `out_dir` with config.json, model.safetensors and tokenizer files, plus a sha256 manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if spec.source == "random":
        _save_random_model(spec, out)
        origin: dict[str, Any] = {"model_type": spec.model_type, "seed": spec.seed, "overrides": spec.config_overrides}
    elif spec.source == "local":
        _copy_allowed_files(check_local_dir(spec), out)
        origin = {"path": str(spec.path)}
    else:
        snapshot = _download_from_hub(spec)
        _copy_allowed_files(snapshot, out)
        origin = {"hub_id": spec.hub_id, "revision": spec.revision, "resolved_snapshot": snapshot.name}
    _require_weights(out, spec)
    write_manifest(out, {"name": spec.name, "source": spec.source, **origin}, task=spec.task)
    if spec.source != "random":
        # Now, not at export: a checkpoint without the head or a weight the forward pass reads is refused, and
        # what it lacks or adds otherwise is said once, here.
        load_torch_model(out, report=True)
    return out


def write_manifest(model_dir: Path, origin: dict[str, Any], task: Task = "feature-extraction") -> None:
    """sha256 of every file, where it came from, and the architecture facts read from its config."""
    from transformers import AutoConfig

    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(model_dir.iterdir())
        if p.is_file() and p.name != MANIFEST_NAME
    }
    for name in files:
        respect_umask(model_dir / name)
    facts = ArchitectureFacts.from_hf_config(AutoConfig.from_pretrained(model_dir, trust_remote_code=False))
    write_json_atomic(model_dir / MANIFEST_NAME,
                      {"origin": origin, "task": task, "architecture": asdict(facts), "files": files})


def model_task(model_dir: str | Path) -> Task:
    """The task download_model recorded for this model (feature extraction for a manifest without one)."""
    manifest = Path(model_dir) / MANIFEST_NAME
    return read_json(manifest).get("task", "feature-extraction") if manifest.is_file() else "feature-extraction"


def random_model_config(spec: ModelSpec) -> Any:
    """The transformers config of a `source: random` model, refusing what would silently build another
    model: an unknown model_type, an override field the config class does not have (a typo would leave the
    default in place), a size that is not a positive integer, heads that do not divide the hidden size."""
    import difflib

    from transformers import CONFIG_MAPPING

    where = f"model {spec.name!r}"
    if spec.model_type not in CONFIG_MAPPING:
        close = difflib.get_close_matches(spec.model_type or "", list(CONFIG_MAPPING.keys()), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ModelSourceError(
            f"{where}: unknown model_type {spec.model_type!r}{hint}; the valid names are transformers' "
            f"config types: python -c 'import transformers; print(sorted(transformers.CONFIG_MAPPING))'"
        )
    config_class = CONFIG_MAPPING[spec.model_type]
    defaults = config_class()
    known = set(defaults.to_dict()) | set(config_class.attribute_map)
    for key, value in spec.config_overrides.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ModelSourceError(
                f"{where}: config_overrides.{key} is not a field of {config_class.__name__}{hint}"
            )
        default = getattr(defaults, key, None)
        if isinstance(default, bool) or default is None:
            continue
        if isinstance(default, int) and default > 0 and not (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
        ):
            raise ModelSourceError(f"{where}: config_overrides.{key} must be a positive integer, got {value!r}")
        if isinstance(default, float) and not (isinstance(value, (int, float)) and value >= 0):
            raise ModelSourceError(f"{where}: config_overrides.{key} must be a number >= 0, got {value!r}")
    config = config_class(**spec.config_overrides)
    facts = ArchitectureFacts.from_hf_config(config)
    if facts.hidden_size % facts.num_heads:
        raise ModelSourceError(
            f"{where}: the hidden size {facts.hidden_size} is not a multiple of the {facts.num_heads} attention "
            f"heads; change config_overrides"
        )
    return config


def _save_random_model(spec: ModelSpec, out: Path) -> None:
    import torch
    from transformers import AutoModel

    config = random_model_config(spec)
    torch.manual_seed(spec.seed)
    if spec.task == CLASSIFICATION:
        from transformers import AutoModelForSequenceClassification

        config.num_labels = spec.num_labels
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModel.from_config(config)
    model.save_pretrained(out, safe_serialization=True)
    log.info("random %s weights (seed %d) saved to %s", spec.model_type, spec.seed, out)


def check_local_dir(spec: ModelSpec) -> Path:
    """The source directory of a `source: local` model, with a config.json that parses."""
    source = Path(spec.path).expanduser()
    if not source.exists() and not source.is_symlink():
        raise ModelSourceError(f"model {spec.name!r}: local path {str(source)!r} does not exist")
    try:
        source.resolve(strict=True)
    except (OSError, RuntimeError) as error:  # missing, dangling link or a loop of links
        raise ModelSourceError(f"model {spec.name!r}: local path {str(source)!r} cannot be opened ({error})") from None
    if not source.is_dir():
        raise ModelSourceError(f"model {spec.name!r}: local path {str(source)!r} is not a directory")
    config = source / "config.json"
    if not config.is_file():
        raise ModelSourceError(f"model {spec.name!r}: {source} has no config.json")
    try:
        json.loads(config.read_text())
    except (ValueError, OSError) as error:
        raise ModelSourceError(f"model {spec.name!r}: {config} is not valid JSON ({error})") from None
    return source


def local_source_files(spec: ModelSpec) -> list[Path]:
    """The files a `source: local` model is copied from: the rule's inputs, so a changed weight file (or a
    truncated one, fixed later) is copied again."""
    source = Path(spec.path).expanduser()
    return sorted(
        {path for pattern in ALLOWED_FILE_PATTERNS for path in source.glob(pattern) if path.is_file()}
    )


def _download_from_hub(spec: ModelSpec) -> Path:
    from huggingface_hub import snapshot_download

    try:
        # The HF cache (HF_HOME / HF_HUB_CACHE) is respected: a cached snapshot is not downloaded again.
        snapshot = snapshot_download(
            repo_id=spec.hub_id, revision=spec.revision, allow_patterns=list(ALLOWED_FILE_PATTERNS)
        )
    except Exception as error:  # offline, unknown repo, gated: all end the same way for the user
        raise ModelSourceError(
            f"model {spec.name!r}: cannot download {spec.hub_id!r} at revision {spec.revision!r} from the "
            f"Hugging Face Hub ({type(error).__name__}: {first_line(error)}). Without network, use source: local with a "
            f"path to the model directory, or source: random with a model_type."
        ) from error
    log.info("hub snapshot of %s@%s at %s", spec.hub_id, spec.revision, snapshot)
    return Path(snapshot)


def _copy_allowed_files(source: Path, out: Path) -> None:
    """Copy what ALLOWED_FILE_PATTERNS allows; every safetensors file is checked as it is copied, and a
    broken one is named by its source path."""
    for pattern in ALLOWED_FILE_PATTERNS:
        for path in source.glob(pattern):
            if path.is_file():
                shutil.copyfile(path, out / path.name)
                if path.suffix == ".safetensors":
                    _check_safetensors(out / path.name, source_path=path)


def _check_safetensors(copy: Path, source_path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(copy), framework="numpy") as weights:
            for name in weights.keys():
                weights.get_slice(name)
    except Exception as error:  # SafetensorError and friends: all mean the source file is damaged
        raise ModelSourceError(
            f"{source_path} is not a readable safetensors file ({type(error).__name__}: {error}); it may be "
            f"truncated or still being written. Fix or replace it, then rerun."
        ) from None


def _require_weights(model_dir: Path, spec: ModelSpec) -> None:
    if any(model_dir.glob("*.safetensors")):
        return
    raise ModelSourceError(
        f"model {spec.name!r}: no *.safetensors weights found. Pickled weights (pytorch_model.bin) are "
        f"refused because loading them can run arbitrary code; convert them to safetensors first."
    )


def verify_model_dir(model_dir: str | Path) -> None:
    """Refuse a model directory whose files no longer match the sha256 its manifest recorded."""
    folder = Path(model_dir)
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return  # a directory the pipeline did not write (a test's, a user's): nothing to compare with
    for name, entry in read_json(manifest).get("files", {}).items():
        file = folder / name
        if not file.is_file() or file_sha256(file) != entry.get("sha256"):
            raise ModelSourceError(
                f"{file} does not match the sha256 in {manifest}: it was changed after download_model wrote it. "
                f"Delete {folder} and rerun the workflow to make it again."
            )


def load_torch_model(model_dir: str | Path, attn_implementation: str = "eager", report: bool = False) -> Any:
    """The model in eval mode, from safetensors only, after checking it against its manifest: the encoder
    alone, or for a classification model the encoder with its head (refused when the checkpoint has none:
    transformers would fill a missing head with random weights, and every label it gave would be noise).
    A weight the checkpoint lacks and the timed forward pass reads is refused too (check_loaded_weights);
    what it lacks or adds otherwise is one line, on the terminal with `report` (the download stage) and in the
    job's log otherwise. transformers' own load report goes to the job's log only."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from inference_bench.terminal import LOG_ONLY

    verify_model_dir(model_dir)
    _send_transformers_logs_to_the_job_log()
    classifier = model_task(model_dir) == CLASSIFICATION
    loader = AutoModelForSequenceClassification if classifier else AutoModel
    model, info = loader.from_pretrained(model_dir, attn_implementation=attn_implementation, use_safetensors=True,
                                         trust_remote_code=False, output_loading_info=True)
    if classifier:
        missing = [key for key in info.get("missing_keys", ()) if not key.startswith(model.base_model_prefix + ".")]
        if missing:
            raise ModelSourceError(
                f"{model_dir} is configured as task: sequence-classification, but its checkpoint has no classification "
                f"head ({', '.join(sorted(missing)[:4])} missing): use a fine-tuned checkpoint, or task: "
                f"feature-extraction")
    line = check_loaded_weights(str(model_dir), info, classifier, model.base_model_prefix)
    if line:
        log.info("%s", line, extra=None if report else LOG_ONLY)
    return model.eval()


#: Weights an encoder's forward pass computes but the pipeline never reads when it takes the last hidden
#: state (feature extraction): BERT's pooler. A classifier reads its pooler and head, so it may lack none.
UNREAD_WITHOUT_A_HEAD = ("pooler.",)


def check_loaded_weights(model: str, info: dict[str, Any], classifier: bool, base_prefix: str = "") -> str | None:
    """Refuse a checkpoint that lacks a weight the timed forward pass reads (transformers would fill it with
    random values, and the model would be timed and judged with them); otherwise one line naming what it
    lacks (left at random, never read) and what it has beyond the architecture (ignored), or None."""
    def plain(key: str) -> str:
        return key[len(base_prefix) + 1:] if base_prefix and key.startswith(base_prefix + ".") else key

    missing = sorted(info.get("missing_keys", ()))
    unexpected = sorted(info.get("unexpected_keys", ()))
    read = [key for key in missing if classifier or not plain(key).startswith(UNREAD_WITHOUT_A_HEAD)]
    if read:
        raise ModelSourceError(
            f"{model}: the checkpoint lacks {len(read)} weight(s) the timed forward pass reads "
            f"({_names(read)}); transformers would fill them with random values. Use a complete checkpoint")
    parts = []
    if missing:
        parts.append(f"{len(missing)} weight(s) missing, none read by the timed forward pass ({_names(missing)}: "
                     f"left at random, unused)")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected weight(s) ignored ({_names(unexpected)})")
    return f"{model}: " + "; ".join(parts) if parts else None


def _names(keys: list[str], shown: int = 4) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _send_transformers_logs_to_the_job_log() -> None:
    """transformers prints through a handler of its own (its load report is a multi-line table, once per
    load): hand its records to ours instead, which keep other libraries' lines in the job's log."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    hf_logging.disable_progress_bar()


def is_classifier(model: Any) -> bool:
    return getattr(model, "base_model", model) is not model


def encoder_outputs(model: Any, inputs: dict[str, Any]) -> tuple[Any, Any | None]:
    """(last hidden state, logits or None) of a model load_torch_model made, for the same inputs."""
    if is_classifier(model):
        out = model(**inputs, output_hidden_states=True, return_dict=True)
        return out.hidden_states[-1], out.logits
    return model(**inputs, return_dict=True).last_hidden_state, None
