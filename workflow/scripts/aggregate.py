from _common import run_logged
from inference_bench.report.aggregate import aggregate


def main() -> None:
    out = snakemake.output
    aggregate(
        [*snakemake.input.results, *snakemake.input.failed],
        snakemake.input.sidecars,
        accuracy_paths=snakemake.input.accuracy,
        calibration_json=snakemake.input.calibration,
        summary_csv=out.summary,
        artifacts_csv=out.artifacts,
        summary_md=out.markdown,
        environment_json=out.environment,
        provenance={"config_sources": vars(snakemake.params.config_sources),
                    "settings_hash": snakemake.params.settings_hash},
    )


run_logged(main, snakemake.log[0])
