from _common import run_logged
from inference_bench.artifacts import write_json_atomic
from inference_bench.calibration import measure_matmul_peaks, peak_by_precision
from inference_bench.environment import describe_environment
from inference_bench.hardware import HardwareTag, check_hardware, resolve_threads


def main() -> None:
    tag = HardwareTag(name=snakemake.wildcards.hardware, **snakemake.params.hardware_tag)
    check_hardware(tag)
    threads = resolve_threads(snakemake.params.threads)
    measurements = measure_matmul_peaks(tag.device, threads, sizes=snakemake.params.sizes)
    write_json_atomic(
        snakemake.output.calibration,
        {
            "hardware": tag.name,
            "device": tag.device,
            "threads": threads,
            "measurements": measurements,
            "peak_gflops": peak_by_precision(measurements),
            "environment": describe_environment(device=tag.device, threads=threads),
        },
    )


run_logged(main, snakemake.log[0])
