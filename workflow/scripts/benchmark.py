import logging

from _common import run_logged
from inference_bench import layout
from inference_bench.artifacts import write_json_atomic
from inference_bench.benchmark.run import BenchmarkFailure, BenchmarkJob, failure_record, run_benchmark
from inference_bench.benchmark.timing import TimingSettings
from inference_bench.hardware import HardwareTag, check_machine
from inference_bench.parity import Tolerance


def main() -> None:
    params, wildcards = snakemake.params, snakemake.wildcards
    job = BenchmarkJob(
        hardware=HardwareTag(name=wildcards.hardware, **params.hardware_tag),
        model=wildcards.model,
        variant=wildcards.variant,
        batch_size=int(wildcards.batch),
        sequence_length=int(wildcards.seq),
        model_dir=snakemake.input.model_dir,
        reference_path=snakemake.input.reference,
        onnx_path=snakemake.input.get("onnx"),
        timing=TimingSettings(**params.timing),
        threads=params.threads,
        seed=params.seed,
        attn_implementation=params.attn_implementation,
        tolerance=Tolerance.from_config(params.tolerance),
        memory_limit_mb=params.memory_limit_mb,
        max_other_cpu_share=params.max_other_cpu_share,
    )
    # Done while the DAG was built where jobs run locally; on a cluster node, this is the check.
    check_machine(job.hardware.name, job.hardware.device, layout.MACHINE.format(hardware=job.hardware.name),
                  replace=False)
    marker = layout.failure_marker_path(snakemake.output.result)
    try:
        record = run_benchmark(job, config_for_hash=params.config_for_hash)
    except BenchmarkFailure as failure:
        record = failure_record(job, failure, config_for_hash=params.config_for_hash)
        if params.on_failure == "record":
            logging.getLogger("workflow").error("%s (recorded as a failed row)", failure)
            write_json_atomic(snakemake.output.result, record)
            return
        # The job fails; the marker (not an output, so Snakemake keeps it) lets the next run's summary
        # show the row as failed instead of dropping it. Delete the marker to try the job again.
        write_json_atomic(marker, record)
        raise
    marker.unlink(missing_ok=True)
    write_json_atomic(snakemake.output.result, record)


run_logged(main, snakemake.log[0])
