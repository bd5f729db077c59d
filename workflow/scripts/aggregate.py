from _common import run_logged
from inference_bench.artifacts import atomic_path
from inference_bench.report.aggregate import aggregate
from inference_bench.report.recommend import Constraints, recommend


def main() -> None:
    out = snakemake.output
    summary = aggregate(
        [*snakemake.input.results, *snakemake.input.failed],
        snakemake.input.sidecars,
        accuracy_paths=snakemake.input.accuracy,
        calibration_json=snakemake.input.calibration,
        summary_csv=out.summary,
        artifacts_csv=out.artifacts,
        summary_md=out.markdown,
        environment_json=out.environment,
        variance_csv=out.variance if "variance" in out.keys() else None,
        provenance={"config_sources": vars(snakemake.params.config_sources),
                    "settings_hash": snakemake.params.settings_hash},
    )
    if "recommendation" in out.keys():
        table = recommend(summary, Constraints.from_config(snakemake.params.recommend),
                          {snakemake.wildcards.hardware: snakemake.params.price})
        with atomic_path(out.recommendation) as tmp:
            table.to_csv(tmp, index=False)


run_logged(main, snakemake.log[0])
