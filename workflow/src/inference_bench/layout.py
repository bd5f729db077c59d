"""Where every file lives: the path patterns the rules declare and the Python code builds and parses.

Patterns use Snakemake's wildcard syntax (`{model}`), so a rule names `layout.BENCH_RESULT` as its output
and Python fills the same string with `.format(...)`; the parse functions read tag, model, variant and
shape back from a path. Paths are relative to the project directory Snakemake runs in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RESULTS = "results/"
IMAGES = "images/"
LOGS = "logs/"

# One model's files, shared by every hardware tag.
MODEL = RESULTS + "models/{model}/"
MODEL_DIR = MODEL + "hf"
MANIFEST_NAME = "manifest.json"
REFERENCE = MODEL + "reference.npz"
#: PyTorch FP32 sentence embeddings of the corpus (models with a tokenizer).
TEXT_REFERENCE = MODEL + "text_reference.npz"
ONNX_ARTIFACT = MODEL + "onnx/{artifact}.onnx"
ONNX_SIDECAR = MODEL + "onnx/{artifact}.json"
STAGE_BENCHMARK = MODEL + "benchmarks/{step}.tsv"

# One hardware tag's measurements.
TAG = RESULTS + "{hardware}/"
CALIBRATION = TAG + "calibration.json"
#: The machine the tag's results were measured on, committed with them.
MACHINE = TAG + "machine.json"
TAG_MODEL = TAG + "{model}/"
BENCH_RESULT = TAG_MODEL + "bench/{variant}/b{batch}_s{seq}.json"
#: A comparison: every variant of the tag at one shape, timed in interleaved rounds (the results' source).
COMPARISON = TAG_MODEL + "rounds/b{batch}_s{seq}.json"
FAILURE_MARKER = TAG_MODEL + "failed/{variant}/b{batch}_s{seq}.json"
#: A variant's task-level agreement with PyTorch FP32 on the corpus, on the tag's execution provider.
ACCURACY = TAG_MODEL + "accuracy/{variant}.json"
SUMMARY = TAG_MODEL + "summary.csv"
ARTIFACT_TABLE = TAG_MODEL + "artifacts.csv"
SUMMARY_MARKDOWN = TAG_MODEL + "summary.md"
ENVIRONMENT = TAG_MODEL + "environment.json"
#: What to deploy per shape (inference_bench.report.recommend), for the HTML report.
RECOMMENDATION = TAG_MODEL + "recommendation.csv"
#: Where each comparison's variance lay, level by level (inference_bench.report.variance).
VARIANCE = TAG_MODEL + "variance.csv"
#: One shape's summary beside the model's (what the Python toolkit's run_full_analysis times and returns).
SHAPE = TAG_MODEL + "shapes/b{batch}_s{seq}/"
SHAPE_SUMMARY = SHAPE + "summary.csv"
SHAPE_SUMMARY_ARTIFACTS = SHAPE + "artifacts.csv"
SHAPE_SUMMARY_MARKDOWN = SHAPE + "summary.md"
SHAPE_SUMMARY_ENVIRONMENT = SHAPE + "environment.json"
#: The README rule's output: Snakemake deletes a job's outputs before it runs, so README.md cannot be one.
README_STAMP = RESULTS + "readme.stamp"

CHART = IMAGES + "{model}/{chart}.png"
#: The charts drawn per model, in the README's order.
CHARTS: tuple[str, ...] = ("speedup", "throughput", "latency", "efficiency", "roofline", "memory", "tradeoff",
                           "hardware")

#: Names a hardware tag or a model may not take: they would collide with the folders above.
RESERVED_NAMES = frozenset({"models", "readme.stamp", "calibration.json", "machine.json"})


def log_path(*parts: str) -> str:
    """logs/<parts>.log, e.g. log_path("{hardware}", "calibrate")."""
    return LOGS + "/".join(parts) + ".log"


@dataclass(frozen=True)
class ResultKey:
    """What a benchmark result (or its failure marker) measures, read back from its path."""

    hardware: str
    model: str
    variant: str
    batch_size: int
    sequence_length: int

    def result_path(self) -> str:
        return BENCH_RESULT.format(**self._fields())

    def failure_marker_path(self) -> str:
        return FAILURE_MARKER.format(**self._fields())

    def _fields(self) -> dict[str, object]:
        return {"hardware": self.hardware, "model": self.model, "variant": self.variant,
                "batch": self.batch_size, "seq": self.sequence_length}


_RESULT_TAIL = re.compile(r"(?P<hardware>[^/]+)/(?P<model>[^/]+)/(?:bench|failed)/(?P<variant>[^/]+)/"
                          r"b(?P<batch>\d+)_s(?P<seq>\d+)\.json$")


def parse_result_path(path: str | Path) -> ResultKey:
    match = _RESULT_TAIL.search(Path(path).as_posix())
    if not match:
        raise ValueError(f"{path} is not a benchmark result path ({BENCH_RESULT})")
    return ResultKey(match["hardware"], match["model"], match["variant"], int(match["batch"]), int(match["seq"]))


def failure_marker_path(result_path: str | Path) -> Path:
    """The marker a failed job leaves beside its (missing) result: a file Snakemake does not own, so it
    survives the failed job and tells the next run's summary why."""
    return Path(_prefix_of(result_path, BENCH_RESULT)) / parse_result_path(result_path).failure_marker_path()


@dataclass(frozen=True)
class SummaryKey:
    hardware: str
    model: str


def parse_summary_path(path: str | Path) -> SummaryKey:
    """results/{hardware}/{model}/summary.csv (or any file beside it) -> its tag and model."""
    parts = Path(path).parts
    if len(parts) < 3:
        raise ValueError(f"{path} is not under {TAG_MODEL}")
    return SummaryKey(hardware=parts[-3], model=parts[-2])


def beside_summary(summary_path: str | Path, pattern: str) -> Path:
    """A file of the same tag and model as `summary_path`, e.g. beside_summary(p, layout.ENVIRONMENT)."""
    key = parse_summary_path(summary_path)
    return Path(_prefix_of(summary_path, SUMMARY)) / pattern.format(hardware=key.hardware, model=key.model)


def _prefix_of(path: str | Path, pattern: str) -> str:
    """The folder a path of `pattern` sits under (results/ may live under a project elsewhere)."""
    depth = pattern.count("/")
    parts = Path(path).parts
    return str(Path(*parts[: len(parts) - depth - 1])) if len(parts) > depth + 1 else "."
