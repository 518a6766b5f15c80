"""Device and precision: CUDA when present (or asked for), CPU otherwise; bf16 autocast where the
hardware does bf16 natively.

bf16 autocast is on by default on CUDA and on CPUs with native bf16 instructions (AVX512_BF16 or
AMX-BF16): there it roughly doubled SPADE inference and made a Linknet training step ~1.5x faster
on the project's machines. On other CPUs bf16 is emulated and slower than fp32, so ``auto`` keeps
fp32 there. ``runtime.precision`` (auto | fp32 | bf16) overrides the choice for the whole process,
like ``runtime.threads``; :func:`configure` applies both.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
_precision = "auto"


def pick_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device={spec}: CUDA is not available on this machine; use auto or cpu")
    return dev


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """AVX512_BF16 or AMX-BF16 in the CPU flags (Linux); False where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
            break
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def configure(runtime) -> None:
    """Apply ``runtime.threads`` and ``runtime.precision`` (a RuntimeConfig) to this process."""
    global _precision
    if getattr(runtime, "threads", None):
        torch.set_num_threads(int(runtime.threads))
    _precision = getattr(runtime, "precision", "auto")


def uses_bf16(device: torch.device) -> bool:
    """Whether autocast runs bf16 on ``device`` under the current precision setting."""
    if _precision == "fp32":
        return False
    if _precision == "bf16" or device.type == "cuda":
        return True
    return device.type == "cpu" and cpu_has_native_bf16()


def precision_name(device: torch.device, enabled: bool = True) -> str:
    """"bf16" or "fp32": what :func:`autocast` runs on ``device``, written into training records
    (precision is a runtime choice outside the stage keys, so a run folder must say which it was)."""
    return "bf16" if enabled and uses_bf16(device) else "fp32"


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast where :func:`uses_bf16` says so (no loss scaling needed with bf16); else a no-op.
    ``enabled``: the stage's own switch (``segmentation.amp``, ``generator.amp``)."""
    on = enabled and uses_bf16(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def dask_cpu_share() -> int | None:
    """On a Dask worker: this worker's share of its host's cores (cores / worker processes on the
    host, at least its own thread count); None elsewhere. Dask's nanny starts workers with
    OMP_NUM_THREADS=1, which leaves torch single-threaded unless a stage sets its threads."""
    import os

    try:
        from distributed import get_client, get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    own = max(1, int(getattr(worker.state, "nthreads", 1) or 1))
    try:
        host = worker.address.rsplit(":", 1)[0]
        infos = get_client().scheduler_info(n_workers=-1)["workers"].values()
        on_host = sum(1 for info in infos if info.get("host") == host.split("://")[-1]) or 1
    except Exception:  # scheduler unreachable: assume this worker is alone on the host
        on_host = 1
    return max(own, cores // on_host)
