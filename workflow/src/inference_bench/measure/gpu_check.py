"""Before a GPU measurement: does ONNX Runtime's CUDA provider really load (a session that runs, not the
provider list), and which hardware tag of the config names this GPU.

    python -m inference_bench.measure.gpu_check config/config.yaml     # prints the tag; exit 3: CUDA provider broken
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

#: Exit status when the GPU is there but ONNX Runtime's CUDA provider does not run a session.
PROVIDER_BROKEN = 3


def tag_for_gpu(gpu_name: str, hardware_tags: dict[str, dict[str, Any]]) -> str:
    """The CUDA tag whose `gpu_name_contains` is in the GPU's name (the longest match: "H100" before "H1")."""
    matches = [
        (len(settings["gpu_name_contains"]), tag)
        for tag, settings in hardware_tags.items()
        if settings.get("device") == "cuda" and settings.get("gpu_name_contains", "").lower() in gpu_name.lower()
        and settings.get("gpu_name_contains")
    ]
    if not matches:
        known = ", ".join(f"{t} ({s.get('gpu_name_contains')})" for t, s in hardware_tags.items() if s.get("device") == "cuda")
        raise SystemExit(f"no hardware tag names the GPU {gpu_name!r}; add one to hardware_tags (known: {known})")
    return max(matches)[1]


def cuda_provider_runs() -> str | None:
    """None when a CUDA session builds and runs a small FP16 matrix multiply; else the error, verbatim."""
    import numpy as np

    from inference_bench.measure.calibration import matmul_session

    try:
        with tempfile.TemporaryDirectory() as folder:
            session = matmul_session(64, "fp16", ["CUDAExecutionProvider"], 0, Path(folder))
            if session.get_providers()[0] != "CUDAExecutionProvider":
                return f"the session fell back to {session.get_providers()}"
            session.run(None, {"A": np.ones((64, 64), dtype=np.float16)})
    except Exception as error:  # report whatever ONNX Runtime says, exactly
        return f"{type(error).__name__}: {error}"
    return None


def main(argv: list[str]) -> int:
    import torch

    config = yaml.safe_load(Path(argv[0] if argv else "config/config.yaml").read_text())
    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0)
    tag = tag_for_gpu(name, config["hardware_tags"])
    problem = cuda_provider_runs()
    print(tag)
    print(f"GPU {name}; tag {tag}; CUDA provider: {problem or 'runs a session'}", file=sys.stderr)
    return PROVIDER_BROKEN if problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
