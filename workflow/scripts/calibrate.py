import logging

from _common import run_logged
from inference_bench import layout
from inference_bench.artifacts import write_json_atomic
from inference_bench.measure.quiet import canary_ms
from inference_bench.measure.calibration import (measure_matmul_peaks, measure_memory_roofs, peak_by_precision,
                                         theoretical_peaks)
from inference_bench.environment import describe_environment
from inference_bench.hardware import HardwareTag, check_hardware, check_machine, resolve_threads

log = logging.getLogger("inference_bench.calibrate")


def main() -> None:
    tag = HardwareTag(name=snakemake.wildcards.hardware, **snakemake.params.hardware_tag)
    check_hardware(tag)
    # Done while the DAG was built where jobs run locally; on a cluster node, this is the check.
    check_machine(tag.name, tag.device, layout.MACHINE.format(hardware=tag.name), replace=False)
    threads = resolve_threads(snakemake.params.threads)
    measurements = measure_matmul_peaks(tag.device, threads, sizes=snakemake.params.sizes)
    peaks, roofs = peak_by_precision(measurements), measure_memory_roofs(tag.device, threads)
    log.info("%s: matmul peaks %s; memory %.0f GB/s", tag.name,
             ", ".join(f"{p.upper()} {v:.0f}" for p, v in sorted(peaks.items())), roofs["memory"]["roof_gbs"])
    write_json_atomic(
        snakemake.output.calibration,
        {
            "hardware": tag.name,
            "device": tag.device,
            "threads": threads,
            "measurements": measurements,
            "peak_gflops": peaks,
            "memory_roofs": roofs,
            "theoretical": theoretical_peaks(tag.device, threads),
            "canary_ms": canary_ms(),
            "environment": describe_environment(device=tag.device, threads=threads),
        },
    )


run_logged(main, snakemake.log[0])
