"""The regression check: fresh summaries against committed ones, through their intervals."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from inference_bench.report.regression import (
    FAILED,
    FASTER,
    SAME,
    SLOWER,
    DifferentMachineError,
    NothingCommittedError,
    RegressionError,
    check_regressions,
    check_same_machine,
    compare_summaries,
)

SUMMARY = "results/cpu/m/summary.csv"
ENVIRONMENT = "results/cpu/m/environment.json"


def summary(scale: float = 1.0, overrides: dict | None = None) -> pd.DataFrame:
    rows = []
    for variant, p50 in (("pytorch", 80.0), ("ort-int8", 14.0)):
        for batch in (1, 32):
            median = p50 * batch ** 0.8 * scale
            rows.append({"hardware": "cpu", "model": "m", "variant": variant, "batch_size": batch,
                         "sequence_length": 128, "status": "ok", "p50_ms": median,
                         "p50_ci_low_ms": median * 0.98, "p50_ci_high_ms": median * 1.02})
    frame = pd.DataFrame(rows)
    for (variant, batch), values in (overrides or {}).items():
        mask = (frame["variant"] == variant) & (frame["batch_size"] == batch)
        for column, value in values.items():
            frame.loc[mask, column] = value
    return frame


def with_speedups(frame: pd.DataFrame, ort_int8: float = 5.0, half_width: float = 0.03) -> pd.DataFrame:
    """The summary with the speedups a comparison would give: PyTorch 1 (its own row), ort-int8 `ort_int8`."""
    speedup = frame["variant"].map({"pytorch": 1.0, "ort-int8": ort_int8})
    return frame.assign(speedup_vs_pytorch=speedup, speedup_ci_low=speedup / (1 + half_width),
                        speedup_ci_high=speedup * (1 + half_width))


def test_the_host_slowing_down_is_not_a_regression_of_a_paired_speedup():
    """Every latency 20% slower (the host moved between runs) with every speedup unchanged: the absolute verdict
    calls the rows slower; the paired one, which decides, does not, except on the baseline's own row."""
    result = compare_summaries(with_speedups(summary()), with_speedups(summary(scale=1.2))).set_index(
        ["variant", "batch_size"])
    assert set(result["absolute_verdict"]) == {SLOWER}
    assert result.loc[("ort-int8", 1), "paired_verdict"] == SAME and result.loc[("ort-int8", 1), "verdict"] == SAME
    assert pd.isna(result.loc[("pytorch", 1), "paired_verdict"]) and result.loc[("pytorch", 1), "verdict"] == SLOWER
    assert result.loc[("pytorch", 1), "decided_by"] == "absolute" and result.loc[("ort-int8", 1), "decided_by"] == "paired"
    absolute = compare_summaries(with_speedups(summary()), with_speedups(summary(scale=1.2)), decide_on="absolute")
    assert set(absolute["verdict"]) == {SLOWER}


def test_a_variant_that_lost_its_speedup_is_slower_even_when_the_host_hid_it():
    """ort-int8 12% slower against its baseline while the host ran 10% faster: its latency did not move (the
    absolute verdict sees nothing), its paired speedup fell from 5.0 to 4.4: slower, and a regression."""
    fresh = with_speedups(summary(scale=0.9), ort_int8=4.4)
    fresh.loc[fresh["variant"] == "ort-int8", ["p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"]] /= 0.9
    result = compare_summaries(with_speedups(summary()), fresh).set_index(["variant", "batch_size"])
    assert result.loc[("ort-int8", 32), "absolute_verdict"] == SAME
    assert result.loc[("ort-int8", 32), "paired_verdict"] == SLOWER == result.loc[("ort-int8", 32), "verdict"]
    # Below the paired floor, the same fall is noise.
    assert set(compare_summaries(with_speedups(summary()), fresh, min_speedup_change=0.15)
               .query("variant == 'ort-int8'")["verdict"]) == {SAME}


def test_a_fall_within_what_two_runs_of_the_same_code_move_is_noise_by_default():
    """Two runs of unchanged code on a 2-core VM moved speedups by up to 9.5% with disjoint intervals: by default
    (a 10% floor) an 8% fall with disjoint intervals is noise, a 12% one is a regression."""
    committed = with_speedups(summary(), ort_int8=5.0, half_width=0.02)
    verdicts = {}
    for fall in (0.08, 0.12):
        fresh = with_speedups(summary(), ort_int8=5.0 * (1 - fall), half_width=0.02)
        result = compare_summaries(committed, fresh).query("variant == 'ort-int8'")
        assert (result["speedup_high_fresh"] < result["speedup_low_committed"]).all()  # disjoint either way
        verdicts[fall] = set(result["verdict"])
    assert verdicts == {0.08: {SAME}, 0.12: {SLOWER}}


def test_an_unknown_decision_is_refused():
    with pytest.raises(ValueError, match="decide_on"):
        compare_summaries(summary(), summary(), decide_on="median")


def environment(machine: str = "6593127e754a") -> dict:
    return {"fingerprint": {"id": machine}, "git_commit": "abc1234"}


def test_a_summary_against_itself_is_the_same_everywhere():
    result = compare_summaries(summary(), summary())
    assert set(result["verdict"]) == {SAME}


def test_a_twenty_percent_slowdown_is_caught_and_a_speedup_is_not_a_regression():
    assert set(compare_summaries(summary(), summary(scale=1.2))["verdict"]) == {SLOWER}
    assert set(compare_summaries(summary(), summary(scale=0.8))["verdict"]) == {FASTER}


def test_a_shift_inside_the_intervals_is_noise():
    assert set(compare_summaries(summary(), summary(scale=1.03))["verdict"]) == {SAME}


def test_a_disjoint_but_tiny_shift_is_below_min_change():
    fresh = summary(scale=1.045)  # intervals of +-2%: disjoint, yet 4.5% < 5%
    assert set(compare_summaries(summary(), fresh, min_change=0.05)["verdict"]) == {SAME}
    assert set(compare_summaries(summary(), fresh, min_change=0.01)["verdict"]) == {SLOWER}


def test_a_row_that_failed_now_is_a_regression_and_new_rows_are_not():
    fresh = summary(overrides={("ort-int8", 32): {"status": "failed", "p50_ms": float("nan")}})
    extra = pd.concat([fresh, summary().assign(sequence_length=16)])
    result = compare_summaries(summary(), extra).set_index(["variant", "batch_size", "sequence_length"])
    assert result.loc[("ort-int8", 32, 128), "verdict"] == FAILED
    assert result.loc[("pytorch", 1, 16), "verdict"] == "new row"


def test_another_machine_is_refused():
    with pytest.raises(DifferentMachineError, match="measured on machine aaaa, these on bbbb: refusing"):
        check_same_machine(environment("aaaa"), environment("bbbb"), SUMMARY)
    with pytest.raises(DifferentMachineError, match="no machine fingerprint"):
        check_same_machine({}, environment(), SUMMARY)


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """A git checkout with a committed summary and environment."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results/cpu/m").mkdir(parents=True)
    summary().to_csv(SUMMARY, index=False)
    (tmp_path / ENVIRONMENT).write_text(json.dumps(environment()))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "results"], check=True)
    return tmp_path


def test_the_check_passes_against_the_committed_results_themselves(repository):
    report = check_regressions([SUMMARY])
    assert report.count(f"{SAME} (absolute)") == 4  # no speedups in these summaries: the latencies decide


def test_the_check_fails_on_a_committed_summary_made_slower(repository):
    summary(scale=1.2).to_csv(SUMMARY, index=False)
    with pytest.raises(RegressionError, match=r"4 row\(s\) slower beyond noise") as raised:
        check_regressions([SUMMARY])
    assert "+20.0%" in str(raised.value) and f"**{SLOWER}**" in str(raised.value)


def test_the_check_refuses_results_of_another_machine(repository):
    (repository / ENVIRONMENT).write_text(json.dumps(environment("0123456789ab")))
    with pytest.raises(DifferentMachineError, match="refusing to compare"):
        check_regressions([SUMMARY])


def test_nothing_committed_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    with pytest.raises(NothingCommittedError, match="commit a run's results first"):
        check_regressions([SUMMARY])
