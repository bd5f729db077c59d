# The run's targets: every file the summaries, charts and README report on, and the damaged ones among
# them set aside first so that this run rebuilds them. Included last: it reads every stage's input functions.
from inference_bench import integrity


def reported_files():
    """Every file the summaries, the charts and the README report on, for this run's tag and models."""
    files = [layout.CALIBRATION.format(hardware=HARDWARE), *chart_files()]
    for model in MODELS:
        files += [layout.MODEL_DIR.format(model=model), layout.REFERENCE.format(model=model)]
        files += expand(layout.ONNX_ARTIFACT, model=model, artifact=built_artifacts(model)) + _artifact_sidecars(model)
        files += expected_comparisons(model) + _measured(model) + expected_accuracy(model)
        files += [layout.TEXT_REFERENCE.format(model=model)] if reads_text(model) else []
    return files


def set_damaged_files_aside():
    """Move aside what no longer holds what was written, so this run rebuilds it (inference_bench.integrity).
    Only the main process checks: jobs Snakemake spawns (on a cluster, say) must not touch their neighbours."""
    checks = [(integrity.damaged_json, layout.CALIBRATION.format(hardware=HARDWARE))]
    for model in MODELS:
        checks.append((integrity.damaged_model_dir, layout.MODEL_DIR.format(model=model)))
        checks.append((integrity.damaged_npz, layout.REFERENCE.format(model=model)))
        checks += [(integrity.damaged_artifact, path) for path in expand(layout.ONNX_ARTIFACT, model=model,
                                                                         artifact=artifact_names())]
        checks += [(integrity.damaged_json, path) for path in expected_benchmarks(model)]
        checks += [(integrity.damaged_json, path) for path in expected_comparisons(model)]
        checks += [(integrity.damaged_json, layout.failure_marker_path(path)) for path in expected_benchmarks(model)]
        checks += [(integrity.damaged_json, layout.ENVIRONMENT.format(hardware=HARDWARE, model=model))]
    for damage in integrity.find_damage(checks):
        integrity.set_aside(damage)


if workflow.is_main_process and not REPORT_ONLY:
    set_damaged_files_aside()
