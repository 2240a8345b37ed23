"""Worker pinning and core splitting, with simulated device lists (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.engine import devices
from pytest_knowledge.engine.devices import (
    Pinning,
    compute_kind,
    cpu_threads,
    device_for,
    gpu_driver_present,
    pin_worker,
    visible_devices,
    worker_index,
)
from pytest_knowledge.engine.engine import Engine
from pytest_knowledge.engine.loading import target_device


def test_option_wins_and_must_stay_inside_the_outer_visible_set():
    assert visible_devices("2,3", {}, lambda: 8) == ["2", "3"]
    assert visible_devices("1", {"CUDA_VISIBLE_DEVICES": "1,3"}, lambda: 8) == ["1"]
    with pytest.raises(KnowledgeError, match="not in CUDA_VISIBLE_DEVICES=1,3"):
        visible_devices("0,1", {"CUDA_VISIBLE_DEVICES": "1,3"}, lambda: 8)


def test_outer_visible_devices_are_respected_before_counting():
    assert visible_devices(None, {"CUDA_VISIBLE_DEVICES": "4,6"}, lambda: 8) == ["4", "6"]
    assert visible_devices(None, {"CUDA_VISIBLE_DEVICES": ""}, lambda: 8) == []
    assert visible_devices(None, {"CUDA_VISIBLE_DEVICES": "-1"}, lambda: 8) == []
    assert visible_devices(None, {}, lambda: 3) == ["0", "1", "2"]


def test_workers_share_devices_evenly():
    devices = ["4", "6"]
    chosen = [device_for(worker_index(f"gw{i}"), devices) for i in range(5)]
    assert chosen == ["4", "6", "4", "6", "4"]
    assert device_for(0, []) is None


@pytest.mark.parametrize("cores, workers, threads", [(2, 1, 2), (2, 2, 1), (16, 4, 4), (2, 8, 1)])
def test_cpu_cores_are_split_between_workers(cores, workers, threads):
    assert cpu_threads(cores, workers) == threads


def test_pinning_sets_the_workers_visible_device_or_its_thread_count():
    environ: dict[str, str] = {"CUDA_VISIBLE_DEVICES": "4,6"}
    assert pin_worker("gw1", 2, ["4", "6"], environ) == Pinning("6", None)
    assert environ["CUDA_VISIBLE_DEVICES"] == "6"
    assert pin_worker("gw0", 64, [], {}) == Pinning(None, 1)


def test_a_cpu_workers_thread_count_is_applied_when_it_first_computes():
    before = torch.get_num_threads()
    try:
        assert Engine(threads=1).workbench is not None
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_no_gpu_driver_means_cpu_without_asking_torch(monkeypatch):
    present = {"/proc/driver/nvidia"}
    assert gpu_driver_present(present.__contains__, "linux")
    assert not gpu_driver_present(set().__contains__, "linux")
    assert gpu_driver_present(set().__contains__, "darwin")  # cannot tell there: torch is asked

    monkeypatch.setattr(devices, "gpu_driver_present", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("torch was asked"))
    assert compute_kind(None) == "cpu"
    assert compute_kind("0") == "cuda"  # a pinned worker computes on its device


def test_device_kind_agrees_with_where_models_are_loaded():
    assert compute_kind(None) == target_device(None).type


def test_pinning_a_worker_does_not_import_torch():
    script = ("import sys; from pytest_knowledge.engine.devices import pin_worker; "
              "pin_worker('gw0', 2, [], {}); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
