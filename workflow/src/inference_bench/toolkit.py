"""From Python, the same workflow as the command line: the project's first description, as it was written.

    from inference_bench.toolkit import TransformerOptimizationToolkit

    toolkit = TransformerOptimizationToolkit("distilbert-base-uncased", source="random")
    toolkit.export_onnx()
    df = toolkit.run_full_analysis("The quick brown fox jumps over the lazy dog.")

A thin facade, never a second pipeline: it writes a config file (the project's config/config.yaml with this
model and these settings, validated by the same schema) under results/toolkit/, and asks Snakemake, through
its Python API, for the files the command line would make. So it shares results/ and its caching with the
command line: a second call with the same settings measures nothing again.

`run_full_analysis(text)` times every variant at the shape of the text: as many sequences as texts, padded to
the longest one's tokens (an encoder's latency depends on that shape, not on which tokens fill it; whether
each variant still does the model's job on real text is the accuracy stage's question, on the corpus).
A model without a tokenizer (`source="random"`) counts a text's tokens as its words plus two.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from inference_bench import layout
from inference_bench.config_validation import validate_config
from inference_bench.errors import PipelineError, PlanningRefused
from inference_bench.hardware import AUTO, AUTO_TEMPLATE, VariantCannotRunError, plan_hardware

log = logging.getLogger(__name__)

#: The checkout this package lives in: its Snakefile, config and results/.
PROJECT = Path(__file__).resolve().parents[3]
_SPECIAL_TOKENS = 2  # [CLS] and [SEP] around a BERT-family sequence


class TransformerOptimizationToolkit:
    """One model, its settings, and the workflow that measures it (see the module's docstring)."""

    def __init__(
        self,
        model_id: str,
        source: str = "hub",
        *,
        path: str | Path | None = None,
        revision: str = "main",
        model_type: str | None = None,
        config_overrides: dict[str, Any] | None = None,
        hardware: str | None = None,
        variants: Sequence[str] | None = None,
        batch_sizes: Sequence[int] | None = None,
        sequence_lengths: Sequence[int] | None = None,
        project: str | Path = PROJECT,
        cores: int = 1,
        **settings: Any,
    ) -> None:
        self.project = Path(project).resolve()
        self.cores = cores
        self.name = model_id.rstrip("/").split("/")[-1].lower()
        model: dict[str, Any] = {"name": self.name, "source": source}
        if source == "hub":
            model |= {"hub_id": model_id, "revision": revision}
        elif source == "local":
            model["path"] = str(path or model_id)
        elif source == "random":
            model["model_type"] = model_type or _model_type_in(self.name)
            if config_overrides:
                model["config_overrides"] = dict(config_overrides)
        config = yaml.safe_load((self.project / "config" / "config.yaml").read_text())
        config["models"] = [model]
        if hardware:
            config["hardware"] = hardware
        if variants:
            config["hardware_tags"][AUTO_TEMPLATE if config["hardware"] == AUTO else config["hardware"]]["variants"] = \
                list(variants)
        if batch_sizes:
            config["benchmark"]["batch_sizes"] = list(batch_sizes)
        if sequence_lengths:
            config["benchmark"]["sequence_lengths"] = list(sequence_lengths)
        for section, values in settings.items():  # e.g. int8={"per_channel": False}, benchmark={"processes": 2}
            if isinstance(values, dict) and isinstance(config.get(section), dict):
                config[section] = {**config[section], **values}
            else:
                config[section] = values
        config.pop("targets", None)  # the roadmap's targets are the default run's, not this model's
        self.config = config
        validated = validate_config(dict(yaml.safe_load(yaml.safe_dump(config))),
                                    self.project / "workflow" / "schemas" / "config.schema.yaml")
        #: The tag this toolkit's results land under (this machine's own with `hardware: auto`).
        self.hardware = plan_hardware(validated)
        if variants and self.hardware.left_out:  # asked for by name: refused, not left out
            name, why = next(iter(self.hardware.left_out.items()))
            raise VariantCannotRunError(f"{name} cannot run on this machine: {why}")

    # --- the seed's two calls ------------------------------------------------------------------------------

    def export_onnx(self, dummy_input: Any = None) -> dict[str, dict[str, Any]]:
        """Build every ONNX artifact of the model (export, fusion, FP16, INT8) and return, per artifact, its
        path and its sidecar (size, sha256, parity against PyTorch FP32). The export traces the reference
        batch with dynamic batch and sequence axes, so any `dummy_input` shape runs on the files; it is
        accepted for the seed's signature and otherwise unused."""
        if dummy_input is not None:
            log.info("the export traces its own padded reference batch with dynamic axes; dummy_input is not needed")
        from inference_bench.variants import ARTIFACTS

        timed = {self._variant_artifact(v) for v in self._variants()}
        names = [a.name for a in ARTIFACTS.values() if a.recipe not in ("static", "mixed") or a.name in timed]
        targets = [layout.ONNX_ARTIFACT.format(model=self.name, artifact=name) for name in names]
        self._run(targets)
        out = {}
        for name, target in zip(names, targets):
            onnx_path = self.project / target
            sidecar = yaml.safe_load(onnx_path.with_suffix(".json").read_text())
            out[name] = {"path": onnx_path, "sidecar": sidecar}
            log.info("%s: %s (%.1f MB)", name, onnx_path, sidecar["file_bytes"] / 1e6)
        return out

    def run_full_analysis(self, text: str | Sequence[str]) -> pd.DataFrame:
        """Time every variant at the shape of `text` (a string or a list of them) and return the summary's
        rows: latency with its interval, throughput, speedup (paired), memory, share of peak, accuracy."""
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError("run_full_analysis needs a non-empty string or a list of them")
        length = self._token_count(texts)
        self.config["benchmark"] = {**self.config["benchmark"], "batch_sizes": [len(texts)],
                                    "sequence_lengths": [length]}
        log.info("%d text(s), %d tokens at the longest: timing batch %d, sequence %d", len(texts), length,
                 len(texts), length)
        # A summary of this shape's own, beside the model's: the command line's summary keeps its shapes.
        summary = layout.SHAPE_SUMMARY.format(hardware=self.hardware.name, model=self.name, batch=len(texts),
                                              seq=length)
        self._run([summary])
        return pd.read_csv(self.project / summary)

    def recommend(self, max_p99_ms: float | None = None, min_accuracy_relative: float | None = None,
                  price_per_hour: float | None = None) -> pd.DataFrame:
        """What to deploy for this model on this machine, from the results on disk (no measuring): per batch
        size and sequence length, the fastest variant that keeps `min_accuracy_relative` of FP32's task accuracy
        (the accuracy gate by default) within a p99 of `max_p99_ms`, its ties, and its cost per million
        sequences at `price_per_hour` (inference_bench.report.recommend)."""
        from inference_bench.report.recommend import Constraints, recommend

        summary = self.project / layout.SUMMARY.format(hardware=self.hardware.name, model=self.name)
        shapes = sorted(summary.parent.glob("shapes/*/summary.csv"))  # run_full_analysis's, one shape each
        frames = [pd.read_csv(path) for path in [summary, *shapes] if path.is_file()]
        if not frames:
            raise PipelineError(f"no {summary.relative_to(self.project)} yet: measure first (run_full_analysis, or "
                                f"snakemake --cores 1 with this model in the config)")
        rows = pd.concat(frames, ignore_index=True).drop_duplicates(
            ["variant", "batch_size", "sequence_length"], keep="first")
        price = price_per_hour if price_per_hour is not None else self.hardware.settings.get("price_per_hour")
        return recommend(rows, Constraints(max_p99_ms, min_accuracy_relative), {self.hardware.name: price})

    # --- the workflow underneath ---------------------------------------------------------------------------

    def _variants(self) -> list[str]:
        return list(self.hardware.settings["variants"])

    @staticmethod
    def _variant_artifact(variant: str) -> str | None:
        from inference_bench.variants import VARIANTS

        return VARIANTS[variant].artifact

    def _token_count(self, texts: list[str]) -> int:
        model_dir = self.project / layout.MODEL_DIR.format(model=self.name)
        if not model_dir.exists():
            self._run([layout.MODEL_DIR.format(model=self.name)])
        from inference_bench.inputs.corpus import has_tokenizer

        if has_tokenizer(model_dir):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
            return max(len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"])
        return max(len(t.split()) for t in texts) + _SPECIAL_TOKENS

    def config_file(self) -> Path:
        """The config this toolkit runs, written where a command line can run it too."""
        path = self.project / layout.RESULTS / "toolkit" / f"{self.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return path

    def _run(self, targets: list[str]) -> None:
        """Snakemake's Python API, in the project's folder, for `targets`; back to the caller's folder after."""
        from snakemake.api import SnakemakeApi
        from snakemake.settings.types import ConfigSettings, DAGSettings, ResourceSettings

        config_file = self.config_file()
        here = Path.cwd()
        try:
            with SnakemakeApi() as api:
                workflow = api.workflow(
                    snakefile=self.project / "Snakefile", workdir=self.project,
                    resource_settings=ResourceSettings(cores=self.cores),
                    config_settings=ConfigSettings(configfiles=[config_file]))
                workflow.dag(DAGSettings(targets=set(targets))).execute_workflow(executor="local")
        except PlanningRefused as refused:  # its line was logged; the caller gets an exception, not an exit
            raise PipelineError(refused.message) from None
        finally:
            os.chdir(here)
        log.info("config %s; results under %s", config_file, self.project / layout.RESULTS)


def _model_type_in(name: str) -> str:
    """The transformers model type a checkpoint name starts with (`distilbert-base-uncased` -> distilbert)."""
    from transformers import CONFIG_MAPPING

    known = sorted(CONFIG_MAPPING.keys(), key=len, reverse=True)
    for model_type in known:
        if name.startswith((model_type.replace("_", "-"), model_type)):
            return model_type
    raise ValueError(f"cannot tell the model type of {name!r}; pass model_type= (e.g. 'bert', 'distilbert')")
