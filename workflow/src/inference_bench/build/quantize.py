"""INT8 recipes (onnxruntime.quantization), each one artifact of the registry.

- dynamic: weights quantized ahead of time (per channel by default), activations at run time. From the fused
  graph (`ort-int8`: the quantizer turns each Attention into a QAttention) or from the export (`onnx-int8`:
  ONNX Runtime fuses the quantized graph itself when the session loads, around MatMulIntegerToFloat).
- static: a QuantizeLinear/DequantizeLinear pair around every weight MatMul, the activation ranges calibrated
  ahead of time on the corpus's calibration texts (`onnx-int8-static`), by `int8.calibration_method`.
- mixed: accuracy-aware mixed precision (`onnx-int8-mixed`). The dynamic recipe of the export, and when it
  misses the gate, the fewest MatMuls kept in FP32 that bring it back: each MatMul's sensitivity is the
  score lost with only that MatMul quantized; MatMuls are kept in FP32 most sensitive first, and the count is
  found by bisection on the score.

Calibration and the search use the corpus's calibration texts (`accuracy.calibration_texts`), never the texts
the accuracy stage judges, so that a recipe is not fitted to its own exam; models without a tokenizer use
seeded random token ids apart from the parity batch's.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from inference_bench.errors import PipelineError
from inference_bench.terminal import LOG_ONLY

log = logging.getLogger(__name__)

Recipe = Literal["dynamic", "static", "mixed"]
CalibrationMethod = Literal["minmax", "entropy", "percentile"]
CALIBRATION_METHODS: tuple[CalibrationMethod, ...] = ("minmax", "entropy", "percentile")
CALIBRATION_BATCH = 16
#: The histogram methods keep every batch's activations at one width: texts are cut to this many tokens and
#: cut in batches of HISTOGRAM_BATCH rows, which bounds their memory on long texts.
HISTOGRAM_WIDTH = 128
HISTOGRAM_BATCH = 8

#: Fused contrib ops (Attention, SkipLayerNormalization) carry no type information ONNX shape inference
#: understands; without this default the quantizer cannot type their outputs.
_TYPED = {"DefaultTensorType": 1}  # onnx.TensorProto.FLOAT


def weight_matmuls(onnx_path: str | Path) -> list[str]:
    """Names of the MatMul nodes whose second input is a weight (an initializer), in graph order: the ones a
    recipe quantizes and the mixed search may keep in FP32."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    nodes = [node for node in model.graph.node if node.op_type == "MatMul" and node.input[1] in weights]
    unnamed = [node for node in nodes if not node.name]
    if unnamed:
        raise ValueError(f"{onnx_path}: {len(unnamed)} weight MatMuls have no name; nodes_to_exclude cannot name them")
    return [node.name for node in nodes]


@contextlib.contextmanager
def _staged(onnx_in: str | Path) -> Iterator[Path]:
    """`onnx_in` through a link in a folder of its own: onnxruntime's quantizer writes `<name>-inferred.onnx`
    beside its input and deletes it, so two recipes quantizing one source at once would race on that file."""
    with tempfile.TemporaryDirectory(prefix="quantize-") as folder:
        link = Path(folder) / Path(onnx_in).name
        link.symlink_to(Path(onnx_in).resolve())
        yield link


def quantize_dynamic_int8(onnx_in: str | Path, onnx_out: str | Path, per_channel: bool = True,
                          reduce_range: bool = False, keep_fp32: Sequence[str] = ()) -> None:
    """Dynamic INT8 (S8 weights, U8 activations quantized at run time); `keep_fp32` names MatMuls left alone."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    Path(onnx_out).parent.mkdir(parents=True, exist_ok=True)
    with _staged(onnx_in) as source:
        quantize_dynamic(str(source), str(onnx_out), per_channel=per_channel, reduce_range=reduce_range,
                         weight_type=QuantType.QInt8, nodes_to_exclude=list(keep_fp32), extra_options=dict(_TYPED))
    log.info("dynamic INT8 %s -> %s (per_channel=%s, reduce_range=%s, %d MatMuls kept in FP32)",
             onnx_in, onnx_out, per_channel, reduce_range, len(keep_fp32), extra=LOG_ONLY)


class _Batches:
    """onnxruntime's CalibrationDataReader over a list of feeds (subclassed lazily: the import is heavy)."""

    def __new__(cls, batches: list[dict[str, np.ndarray]]):
        from onnxruntime.quantization import CalibrationDataReader

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._batches = iter(batches)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self._batches, None)

        return Reader()


def quantize_static_int8(onnx_in: str | Path, onnx_out: str | Path, batches: list[dict[str, np.ndarray]],
                         method: CalibrationMethod = "minmax", per_channel: bool = True, reduce_range: bool = False,
                         keep_fp32: Sequence[str] = ()) -> None:
    """Static INT8 in QDQ form around every weight MatMul, activation ranges calibrated on `batches`."""
    from onnxruntime.quantization import CalibrationMethod as OrtMethod
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(CALIBRATION_METHODS)}")
    if not batches:
        raise ValueError("static INT8 needs at least one calibration batch")
    ort_method = {"minmax": OrtMethod.MinMax, "entropy": OrtMethod.Entropy, "percentile": OrtMethod.Percentile}
    Path(onnx_out).parent.mkdir(parents=True, exist_ok=True)
    with _staged(onnx_in) as source:
        quantize_static(
            str(source), str(onnx_out), _Batches(batches), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"], per_channel=per_channel, reduce_range=reduce_range,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=list(keep_fp32),
            calibrate_method=ort_method[method], calibration_providers=["CPUExecutionProvider"],
            extra_options={**_TYPED, "MatMulConstBOnly": True},
        )
    log.info("static INT8 %s -> %s (%s calibration on %d batches, %d MatMuls kept in FP32)",
             onnx_in, onnx_out, method, len(batches), len(keep_fp32), extra=LOG_ONLY)


# --- what calibration and the search read ------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationSet:
    """Model inputs for calibration and for scoring a candidate: the corpus's calibration texts, or seeded
    random ids for a model without a tokenizer. `feeds` are padded to the longest row; `batches` cut them in
    groups of similar length, each padded to its own longest."""

    feeds: dict[str, np.ndarray]
    text: bool
    description: str

    def batches(self, size: int = CALIBRATION_BATCH) -> list[dict[str, np.ndarray]]:
        from inference_bench.inputs.corpus import length_batches

        return [batch for _, batch in length_batches(self.feeds, size)]

    def uniform_batches(self, size: int = HISTOGRAM_BATCH) -> list[dict[str, np.ndarray]]:
        """Batches of one shape (every row padded to the longest, a remainder of rows dropped): onnxruntime's
        histogram calibrators (entropy, percentile) stack every batch's activations into one array."""
        rows = max(size, len(self.feeds["attention_mask"]) // size * size)
        return [{name: value[start : start + size] for name, value in self.feeds.items()}
                for start in range(0, min(rows, len(self.feeds["attention_mask"])), size)]


def calibration_batches(calibration_for: Callable[[int], CalibrationSet], method: CalibrationMethod,
                        max_length: int) -> list[dict[str, np.ndarray]]:
    """What `method` calibrates on: batches of similar length for minmax, batches of one shape (texts cut to
    HISTOGRAM_WIDTH tokens) for the histogram methods."""
    if method == "minmax":
        return calibration_for(max_length).batches()
    return calibration_for(min(max_length, HISTOGRAM_WIDTH)).uniform_batches()


def calibration_set(model_dir: str | Path, input_names: list[str], max_length: int, seed: int) -> CalibrationSet:
    from inference_bench.inputs.corpus import calibration_texts, has_tokenizer, load_corpus, tokenize_corpus
    from inference_bench.inputs.batches import random_padded_batch
    from inference_bench.models import ArchitectureFacts

    facts = ArchitectureFacts.from_model_dir(model_dir)
    if has_tokenizer(model_dir):
        texts = calibration_texts(load_corpus())
        feeds = tokenize_corpus(model_dir, texts, min(max_length, facts.max_positions), input_names)
        return CalibrationSet(feeds, True, f"{len(texts)} calibration texts of the corpus")
    feeds = random_padded_batch(facts, input_names, seed, max_length=min(128, facts.max_positions - 2), rows=32)
    return CalibrationSet(feeds, False, f"32 rows of random token ids (seed {seed})")


Scorer = Callable[[Path], float]


class MixedPrecisionError(PipelineError, RuntimeError):
    """Even keeping MatMuls in FP32 does not bring the recipe back to its gate (the loss is elsewhere)."""


def fp32_scorer(onnx_fp32: str | Path, calibration: CalibrationSet) -> tuple[Scorer, str]:
    """A function scoring a candidate ONNX file against `onnx_fp32` on the calibration set, and the score's
    name: for text, the accuracy stage's task metric (Spearman correlation of pairwise sentence
    similarities); otherwise the parity gate's minimum per-token cosine."""
    from inference_bench.accuracy.task import LABEL_AGREEMENT, TASK_METRIC, agreement, embed, predict
    from inference_bench.build.ort_session import declared_feeds, make_session, run_once
    from inference_bench.build.parity import compare_hidden_states
    from inference_bench.build.reference import LOGITS_NAME

    def outputs_of(path: str | Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        session = make_session(path)
        return lambda feeds: np.asarray(run_once(session, feeds), dtype=np.float32)

    if calibration.text and _has_logits(onnx_fp32):
        # A classifier: the share of calibration texts given FP32's label, as the accuracy stage judges it.
        def labels_of(path: str | Path) -> np.ndarray:
            session = make_session(path)
            return predict(lambda feeds: session.run([LOGITS_NAME], declared_feeds(session, feeds))[0],
                           calibration.feeds).argmax(axis=1)

        reference_labels = labels_of(onnx_fp32)
        return (lambda path: float(np.mean(labels_of(path) == reference_labels))), LABEL_AGREEMENT
    if calibration.text:
        reference = embed(outputs_of(onnx_fp32), calibration.feeds)
        return (lambda path: agreement(reference, embed(outputs_of(path), calibration.feeds))[TASK_METRIC]), TASK_METRIC
    mask = calibration.feeds["attention_mask"]
    reference_hidden = outputs_of(onnx_fp32)(calibration.feeds)
    return (lambda path: compare_hidden_states(reference_hidden, outputs_of(path)(calibration.feeds),
                                               mask).min_token_cosine), "min_token_cosine"


def _has_logits(onnx_path: str | Path) -> bool:
    import onnx

    from inference_bench.build.reference import LOGITS_NAME

    return LOGITS_NAME in {o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output}


# --- accuracy-aware mixed precision ------------------------------------------------------------------------


@dataclass
class MixedPrecisionSearch:
    """What the search tried and found: the MatMuls kept in FP32 and the score of each candidate."""

    metric: str
    gate: float
    matmuls: int
    score_all_int8: float
    kept_fp32: list[str] = field(default_factory=list)
    score: float = float("nan")
    sensitivity: dict[str, float] = field(default_factory=dict)  # score lost with only that MatMul quantized
    tried: list[dict[str, float]] = field(default_factory=list)  # {"kept": k, "score": s}, in the order tried
    passed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_fp32_matmuls(matmuls: Sequence[str], quantize: Callable[[Sequence[str], Path], None], score: Scorer,
                        gate: float, metric: str, scratch: str | Path) -> MixedPrecisionSearch:
    """The fewest of `matmuls` to keep in FP32 for `score` to reach `gate`.

    `quantize(keep_fp32, out)` writes a candidate. All MatMuls quantized first: when that passes, nothing is
    kept. Otherwise each MatMul is scored quantized alone (its sensitivity: 1 - score), and the k most
    sensitive are kept in FP32, k found by bisection (the score rises with k: keeping all of them is FP32)."""
    scratch = Path(scratch)

    def score_keeping(keep: Sequence[str], tag: str) -> float:
        path = scratch / f"{tag}.onnx"
        quantize(keep, path)
        value = float(score(path))
        path.unlink(missing_ok=True)
        return value

    names = list(matmuls)
    first = score_keeping([], "all-int8")
    result = MixedPrecisionSearch(metric, gate, len(names), first, score=first)
    result.tried.append({"kept": 0, "score": first})
    if first >= gate:
        result.passed = True
        return result
    for index, name in enumerate(names):
        alone = score_keeping([other for other in names if other != name], f"only-{index}")
        result.sensitivity[name] = 1.0 - alone
        log.info("sensitivity %-60s %.6f", name, 1.0 - alone, extra=LOG_ONLY)
    ranked = sorted(names, key=lambda name: -result.sensitivity[name])
    low, high = 0, len(ranked)  # keeping `low` fails; keeping all of them (FP32) is taken to pass
    scores: dict[int, float] = {}
    while high - low > 1:
        middle = (low + high) // 2
        scores[middle] = score_keeping(ranked[:middle], f"keep-{middle}")
        result.tried.append({"kept": middle, "score": scores[middle]})
        log.info("keeping the %d most sensitive MatMuls in FP32: %s %.6f (gate %.6f)", middle, metric,
                 scores[middle], gate, extra=LOG_ONLY)
        if scores[middle] >= gate:
            high = middle
        else:
            low = middle
    result.kept_fp32 = ranked[:high]
    if high not in scores:
        scores[high] = score_keeping(result.kept_fp32, f"keep-{high}")
        result.tried.append({"kept": high, "score": scores[high]})
    result.score = scores[high]
    result.passed = result.score >= gate
    return result
