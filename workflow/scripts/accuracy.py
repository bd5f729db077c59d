from _common import run_logged
from inference_bench.accuracy.task import accuracy_record
from inference_bench.artifacts import write_json_atomic
from inference_bench.measure.run import runner_for
from inference_bench.hardware import HardwareTag, check_hardware, resolve_threads


def main() -> None:
    params, wildcards = snakemake.params, snakemake.wildcards
    hardware = HardwareTag(name=wildcards.hardware, **params.hardware_tag)
    check_hardware(hardware)
    runner = runner_for(wildcards.variant, hardware, snakemake.input.model_dir, snakemake.input.get("onnx"),
                        resolve_threads(params.threads), params.attn_implementation)
    record = accuracy_record(wildcards.variant, snakemake.input.text_reference, runner.outputs,
                             params.min_relative, hardware.device, logits=runner.logits)
    write_json_atomic(snakemake.output.accuracy, {"hardware": hardware.name, "model": wildcards.model, **record})


run_logged(main, snakemake.log[0])
