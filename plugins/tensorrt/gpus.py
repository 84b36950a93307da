"""Which GPU each worker uses: with several GPUs, pytest-xdist worker gwN's TensorRT processes see one GPU, the N-th,
round robin (CUDA_VISIBLE_DEVICES), so parallel workers do not share one device while others sit idle."""

from __future__ import annotations

import os
import subprocess


def visible_gpus() -> list[str]:
    """GPU ids this run may use: CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L` (no CUDA call in this process)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def pinned_environment(worker_id: str) -> dict[str, str]:
    """The variables worker `worker_id` ("gw3") sets; nothing with one GPU or without xdist."""
    gpus = visible_gpus()
    if worker_id.startswith("gw") and worker_id[2:].isdigit() and len(gpus) > 1:
        return {"CUDA_VISIBLE_DEVICES": gpus[int(worker_id[2:]) % len(gpus)]}
    return {}
