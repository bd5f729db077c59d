import logging

from _common import run_logged
from inference_bench import layout
from inference_bench.artifacts import write_json_atomic
from inference_bench.measure.quiet import QuietCheck, canary_ms
from inference_bench.measure.calibration import (implausible_roofs, measure_matmul_peaks, measure_memory_roofs,
                                                 peak_by_precision, theoretical_peaks, without_implausible_roofs)
from inference_bench.environment import describe_environment
from inference_bench.hardware import HardwareTag, check_hardware, check_machine, resolve_threads

log = logging.getLogger("inference_bench.calibrate")

#: A calibration that was noisy or made no physical sense is measured once more before a roof is refused.
ATTEMPTS = 2


def main() -> None:
    tag = HardwareTag(name=snakemake.wildcards.hardware, **snakemake.params.hardware_tag)
    check_hardware(tag)
    # Done while the DAG was built where jobs run locally; on a cluster node, this is the check.
    check_machine(tag.name, tag.device, layout.MACHINE.format(hardware=tag.name), replace=False)
    threads = resolve_threads(snakemake.params.threads)
    theoretical = theoretical_peaks(tag.device, threads)
    for attempt in range(1, ATTEMPTS + 1):
        # Under the same quiet-machine check as the rows: a roof measured beside another process is too low.
        with QuietCheck() as quiet:
            measurements = measure_matmul_peaks(tag.device, threads, sizes=snakemake.params.sizes)
            peaks, roofs = peak_by_precision(measurements), measure_memory_roofs(tag.device, threads)
        share = quiet.report.other_cpu_share
        noisy = share is not None and share > snakemake.params.max_other_cpu_share
        problems = implausible_roofs(roofs)
        if not noisy and not problems:
            break
        log.info("calibration attempt %d: %s", attempt, "; ".join(
            ([f"other processes used {share:.0%} of the machine"] if noisy else []) + list(problems.values())))
    for problem in problems.values():
        log.warning("calibration of %s: %s; refused, the bounds use the other roofs", tag.name, problem)
    roofs = without_implausible_roofs(roofs, problems)
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
            "refused_roofs": problems,
            "quiet": quiet.report.as_dict(),
            "attempts": attempt,
            "theoretical": theoretical,
            "canary_ms": canary_ms(),
            "environment": describe_environment(device=tag.device, threads=threads),
        },
    )


run_logged(main, snakemake.log[0])
