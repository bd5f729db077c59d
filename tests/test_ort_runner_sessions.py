"""OrtRunner's untimed calls (parity, accuracy) on a CUDA-graph variant: one plain session, released before
timing. The CUDA provider is not needed to check the bookkeeping: make_session is replaced by a counter."""

from __future__ import annotations

import numpy as np

from inference_bench.build import ort_session
from inference_bench.measure.runners import OrtRunner
from inference_bench.build.reference import LOGITS_NAME


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


class _FakeSession:
    def get_inputs(self):
        return [_Named("input_ids")]

    def get_outputs(self):
        return [_Named("last_hidden_state"), _Named(LOGITS_NAME)]

    def run(self, names, feeds):
        assert set(feeds) == {"input_ids"}  # undeclared inputs are dropped
        return [np.ones((1, 2), dtype=np.float64)]


def test_a_cuda_graph_runner_opens_one_plain_session_for_untimed_calls(monkeypatch):
    opened = []
    monkeypatch.setattr(ort_session, "make_session", lambda *a, **k: opened.append(1) or _FakeSession())
    runner = OrtRunner.__new__(OrtRunner)
    runner._path, runner._providers, runner._threads, runner._cuda_graph = "m.onnx", ["CUDAExecutionProvider"], 1, True
    runner.session, runner._plain_session = _FakeSession(), None
    feeds = {"input_ids": np.zeros((1, 2), dtype=np.int64), "token_type_ids": np.zeros((1, 2), dtype=np.int64)}
    for _ in range(3):
        assert runner.outputs(feeds).dtype == np.float32
        assert runner.logits(feeds).shape == (1, 2)
    assert len(opened) == 1
    runner.input_names = ["input_ids"]
    runner.on_cuda = False  # the timed call itself is not under test here
    runner.timed_call(feeds)
    assert runner._plain_session is None
