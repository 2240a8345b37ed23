"""Real pinning under xdist, seen from inside each worker by a probe method.

tests/test_devices.py checks the choice of devices with simulated lists; this checks what
a worker actually gets. On CPU: no device and its share of the cores as torch threads.
With CUDA (those tests are skipped without it): exactly one visible device, chosen
round-robin (``gw<i>`` gets device ``i % count``), an outer ``CUDA_VISIBLE_DEVICES``
respected, ``--knowledge-devices`` obeyed, and the model on that device in bfloat16
(``dtype: auto``).
"""

from __future__ import annotations

import os

import pytest
import torch

from pytest_knowledge.engine.devices import visible_devices
from pytest_knowledge.stores.results_file import read_results

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

PROBE = '''
import os
from dataclasses import dataclass

import torch

from pytest_knowledge.methods import METHODS, MethodReport, register_method
from pytest_knowledge.methods.base import SPARSITY


@dataclass(frozen=True)
class Nothing:
    pass


def _where(model, config, ratio, context):
    parameter = next(model.parameters())
    seen = {
        "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
        "visible": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "count": str(torch.cuda.device_count()),
        "device": str(parameter.device),
        "dtype": str(parameter.dtype).removeprefix("torch."),
        "threads": str(torch.get_num_threads()),
    }
    return MethodReport(touched_parameters=0, details=";".join(f"{k}={v}" for k, v in seen.items()))


if "where" not in METHODS:
    register_method("where", Nothing, ratio=SPARSITY)(_where)
'''

SUITE = """
name: pinning
models:
  - {{name: tiny, source: "{source}"}}
methods:
  - {{name: where, method: where}}
ratios: [{ratios}]
benchmarks:
  - {{name: caps, benchmark: facts, limit: 4}}
"""


def run_probe(pytester: pytest.Pytester, source, workers: int, *args: str,
              visible: str | None = None) -> list[dict[str, str]]:
    """What every compressed case saw, from a ``-n workers`` run with four cases per worker."""
    ratios = ", ".join(f"{(i + 1) / (4 * workers + 1):.4f}" for i in range(4 * workers))
    pytester.makeconftest(PROBE)
    pytester.makefile(".yaml", suite=SUITE.format(source=source, ratios=ratios))
    env_before = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    try:
        result = pytester.runpytest_subprocess("--knowledge-suite=suite.yaml", "-n", str(workers),
                                               "--knowledge-update-baselines", "--knowledge-no-cache",
                                               "--knowledge-no-history", "--knowledge-results=r.json", *args)
    finally:
        if env_before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = env_before
    result.assert_outcomes(passed=4 * workers + 1)
    reports = [r.entry["method_report"]["details"] for r in read_results(pytester.path / "r.json")
               if r.method != "dense"]
    return [dict(part.split("=", 1) for part in details.split(";")) for details in reports]


@pytest.mark.slow  # starts xdist workers
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks CPU-only workers")
def test_cpu_workers_split_the_cores_and_see_no_device(pytester, tiny_llama):
    seen = run_probe(pytester, tiny_llama, 2)
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}  # both workers computed cases
    assert {s["threads"] for s in seen} == {str(max(1, (os.cpu_count() or 1) // 2))}
    assert {s["device"] for s in seen} == {"cpu"} and {s["visible"] for s in seen} == {""}


@needs_cuda
def test_each_worker_sees_one_device_round_robin_with_the_model_on_it(pytester, tiny_llama):
    devices = visible_devices(None, dict(os.environ), torch.cuda.device_count)
    workers = len(devices) + 1  # at least one device shared by two workers
    seen = run_probe(pytester, tiny_llama, workers)
    assert {s["count"] for s in seen} == {"1"} and {s["device"] for s in seen} == {"cuda:0"}
    if torch.cuda.is_bf16_supported():
        assert {s["dtype"] for s in seen} == {"bfloat16"}
    for s in seen:
        assert s["visible"] == devices[int(s["worker"].removeprefix("gw")) % len(devices)], s
    assert {s["visible"] for s in seen} == set(devices)  # every device in use


@needs_cuda
def test_an_outer_visible_device_list_is_respected(pytester, tiny_llama):
    last = str(torch.cuda.device_count() - 1)
    seen = run_probe(pytester, tiny_llama, 2, visible=last)
    assert {s["visible"] for s in seen} == {last} and {s["count"] for s in seen} == {"1"}


@needs_cuda
def test_the_devices_option_chooses_the_devices(pytester, tiny_llama):
    seen = run_probe(pytester, tiny_llama, 2, "--knowledge-devices=0")
    assert {s["visible"] for s in seen} == {"0"} and {s["device"] for s in seen} == {"cuda:0"}
