"""Pin each xdist worker to one accelerator, and split CPU cores between workers.

The controller decides the device list once (``--knowledge-devices``, else the outer
``CUDA_VISIBLE_DEVICES``, else every CUDA device torch counts) and hands it to workers;
each worker sets ``CUDA_VISIBLE_DEVICES`` to its share before torch first touches CUDA.
With more workers than devices, workers share devices round-robin.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

from pytest_knowledge.core.errors import KnowledgeError


def visible_devices(option: str | None, environ: dict[str, str], count: Callable[[], int]) -> list[str]:
    """The accelerators this run may use, as CUDA_VISIBLE_DEVICES entries (empty: CPU only)."""
    if option:
        devices = [d.strip() for d in option.split(",") if d.strip()]
        outer = environ.get("CUDA_VISIBLE_DEVICES")
        if outer is not None and outer.strip():
            allowed = [d.strip() for d in outer.split(",")]
            outside = [d for d in devices if d not in allowed]
            if outside:
                raise KnowledgeError(
                    f"--knowledge-devices: {','.join(outside)} not in CUDA_VISIBLE_DEVICES={outer}"
                )
        return devices
    outer = environ.get("CUDA_VISIBLE_DEVICES")
    if outer is not None:
        return [d.strip() for d in outer.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(count())]


def worker_index(worker_id: str) -> int:
    """'gw3' → 3."""
    return int(worker_id.removeprefix("gw"))


def device_for(index: int, devices: list[str]) -> str | None:
    """Round-robin share: worker i gets devices[i % len(devices)]; None on CPU-only runs."""
    return devices[index % len(devices)] if devices else None


def cpu_threads(cores: int, workers: int) -> int:
    """Threads per worker so that workers together use each core once."""
    return max(1, cores // max(1, workers))


@dataclass(frozen=True)
class Pinning:
    """A worker's share: its device (a CUDA_VISIBLE_DEVICES entry) or, on CPU-only runs, its
    torch thread count — applied when the worker first computes a case, so a worker whose
    cases all come from the cache never imports torch."""

    device: str | None
    threads: int | None


def pin_worker(worker_id: str, worker_count: int, devices: list[str], environ: dict[str, str]) -> Pinning:
    """Set this worker's CUDA_VISIBLE_DEVICES (before anything can initialise CUDA) and say
    what it got."""
    device = device_for(worker_index(worker_id), devices)
    if device is not None:
        environ["CUDA_VISIBLE_DEVICES"] = device
        return Pinning(device, None)
    return Pinning(None, cpu_threads(os.cpu_count() or 1, worker_count))


GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")  # NVIDIA, NVIDIA, ROCm


def gpu_driver_present(exists: Callable[[str], bool] = os.path.exists, platform: str = sys.platform) -> bool:
    """False only where torch certainly sees no GPU: a Linux host without an NVIDIA or ROCm
    driver. Elsewhere it cannot be told without asking torch, so True."""
    return not platform.startswith("linux") or any(exists(p) for p in GPU_DRIVER_PATHS)


def cuda_count() -> int:
    """Number of CUDA devices, without creating a CUDA context in this process, and without
    importing torch (seconds) on hosts that have no GPU driver."""
    if not gpu_driver_present():
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def compute_kind(pinned: str | None) -> str:
    """'cuda' or 'cpu': where this process computes cases (``models.target_device``'s
    choice), known before torch is imported; part of every result-cache key."""
    return "cuda" if pinned is not None or cuda_count() > 0 else "cpu"
