from _common import run_logged

from inference_bench.artifacts import write_json_atomic
from inference_bench.benchmark.run import BenchmarkJob, HardwareTag, run_benchmark
from inference_bench.benchmark.timing import TimingSettings


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
    )
    record = run_benchmark(job, config_for_hash=params.config_for_hash)
    write_json_atomic(snakemake.output.result, record)


run_logged(main, snakemake.log[0])
