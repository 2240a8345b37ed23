"""Write the compressed model of a case to disk, so the exact weights that passed the gate can ship.

``--knowledge-export=DIR`` saves every computed compressed case as ``DIR/<suite>/<case id>/``:
``save_pretrained`` safetensors, the tokenizer, and ``knowledge-case.json`` naming the case,
its method steps with their full configs, and the result it got. That folder loads like any
local checkpoint, so it can be gated again as a suite entry with ``reference:`` (see
docs/artifacts.md). Methods that leave plain tensors (pruning, fake-quantization: ``magnitude``,
``nm``, ``wanda``, ``head``, ``rtn``, ``gguf``) export; torchao's int8 methods replace weights
with tensor subclasses that plain safetensors cannot hold, and exporting them is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_knowledge.core.config import to_plain
from pytest_knowledge.core.errors import KnowledgeError

if TYPE_CHECKING:
    from torch import nn

    from pytest_knowledge.api.models import LoadedModel
    from pytest_knowledge.benchmarks import BenchmarkResult
    from pytest_knowledge.methods import MethodReport
    from pytest_knowledge.suite.parse import Case

CASE_FILE = "knowledge-case.json"


def export_folder(root: Path, case: Case) -> Path:
    return root / case.suite / case.id


def _unsaveable(model: nn.Module, dense_names: set[str]) -> str | None:
    """Why plain safetensors would not hold the model as evaluated, if they would not."""
    import torch

    for name, tensor in model.state_dict().items():
        if type(tensor) is not torch.Tensor:
            return f"{name} is a {type(tensor).__name__}, not a plain tensor"
        if name not in dense_names:
            return f"{name} is not a tensor of the dense model (a module or reparametrisation was added)"
    return None


def export_case(root: Path, case: Case, loaded: LoadedModel, dense_names: set[str], report: MethodReport,
                result: BenchmarkResult) -> Path:
    """Save ``loaded`` as compressed now; written to a scratch folder, then renamed into place."""
    assert case.method is not None
    target = export_folder(root, case)
    problem = _unsaveable(loaded.model, dense_names)
    if problem:
        raise KnowledgeError(
            f"{case.id}: --knowledge-export cannot write method {case.method_name!r} as safetensors ({problem}); "
            "expected a method that leaves plain weights (magnitude, nm, wanda, head, rtn, gguf)"
        )
    meta: dict[str, Any] = {
        "suite": case.suite,
        "case": case.id,
        "model": case.model.name,
        "source": case.model.source,
        "reference": case.model.reference or case.model.name,
        "method": case.method_name,
        "steps": [{"method": s.method.name, "config": to_plain(s.config)} for s in case.method.steps],
        "ratio": case.ratio,
        "benchmark": case.benchmark.name,
        "result": {"metric": result.metric, "value": result.value, "n": result.n, "outcomes": result.outcomes},
        "report": report.to_json(),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        loaded.model.save_pretrained(scratch, safe_serialization=True)
        loaded.tokenizer.save_pretrained(scratch)
        (scratch / CASE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)  # a previous export of the same case
        os.replace(scratch, target)
    except OSError as error:
        raise KnowledgeError(f"{case.id}: --knowledge-export could not write {target} ({error})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
