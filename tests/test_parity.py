import numpy as np
import pytest

from inference_bench.build.parity import ParityError, Tolerance, compare_hidden_states


def _outputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2, 5, 8)).astype(np.float32)


def test_padding_positions_are_ignored():
    reference = _outputs()
    candidate = reference.copy()
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    candidate[0, 3:] += 100.0
    report = compare_hidden_states(reference, candidate, mask)
    assert report.max_abs_diff == 0.0
    assert report.compared_tokens == 8
    assert report.min_token_cosine == pytest.approx(1.0)


def test_drift_is_measured_and_gated():
    reference = _outputs()
    candidate = reference + 0.01
    report = compare_hidden_states(reference, candidate, np.ones((2, 5)))
    assert report.max_abs_diff == pytest.approx(0.01, rel=1e-3)
    assert 0.99 < report.min_token_cosine < 1.0
    report.check(Tolerance(max_abs_diff=0.02, min_cosine=0.99), "ok")
    with pytest.raises(ParityError, match="max abs diff 0.01 > 0.005 allowed"):
        report.check(Tolerance(max_abs_diff=0.005, min_cosine=0.99), "variant")


def test_nan_fails_whatever_the_tolerance():
    reference = _outputs()
    candidate = reference.copy()
    candidate[1, 2, 3] = np.nan
    report = compare_hidden_states(reference, candidate, np.ones((2, 5)))
    assert report.nonfinite_values == 1
    with pytest.raises(ParityError, match="1 NaN/Inf"):
        report.check(Tolerance(max_abs_diff=None, min_cosine=-1.0), "broken")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ParityError, match="shape"):
        compare_hidden_states(_outputs(), _outputs()[:, :3], np.ones((2, 5)))
