"""Device choice: CUDA when present (or asked for), CPU otherwise."""

from __future__ import annotations

import torch


def pick_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device={spec}: CUDA is not available on this machine; use auto or cpu")
    return dev


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (no loss scaling needed); a no-op on CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


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
