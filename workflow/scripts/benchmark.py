from _common import run_logged
from inference_bench import layout
from inference_bench.measure.rounds import Comparison, Design, write_comparison
from inference_bench.measure.run import BenchmarkJob
from inference_bench.measure.timing import TimingSettings
from inference_bench.hardware import HardwareTag, check_machine
from inference_bench.build.parity import Tolerance


def main() -> None:
    params, wildcards = snakemake.params, snakemake.wildcards
    hardware = HardwareTag(name=wildcards.hardware, **params.hardware_tag)
    jobs = tuple(
        BenchmarkJob(
            hardware=hardware,
            model=wildcards.model,
            variant=entry["variant"],
            batch_size=int(wildcards.batch),
            sequence_length=int(wildcards.seq),
            model_dir=snakemake.input.model_dir,
            reference_path=snakemake.input.reference,
            onnx_path=entry["onnx_path"],
            timing=TimingSettings(**params.timing),
            threads=params.threads,
            seed=params.seed,
            attn_implementation=params.attn_implementation,
            tolerance=Tolerance.from_config(entry["tolerance"]),
            memory_limit_mb=params.memory_limit_mb,
            max_other_cpu_share=params.max_other_cpu_share,
            inputs=params.inputs,
            text_padding=params.text_padding,
            allocator=params.allocator,
        )
        for entry in params.variants
    )
    # Done while the DAG was built where jobs run locally; on a cluster node, this is the check.
    check_machine(hardware.name, hardware.device, layout.MACHINE.format(hardware=hardware.name), replace=False)
    comparison = Comparison(jobs=jobs, design=Design(**params.design), config_for_hash=params.config_for_hash)
    write_comparison(comparison, snakemake.output.comparison, log_path=snakemake.log[0])


run_logged(main, snakemake.log[0])
