"""The in-memory side of the engine: one loaded model, its dense snapshot, compression and evaluation.

Only a case the result cache cannot serve gets here, so torch and transformers are
imported the first time a case has to be computed, never on a fully cached run. One
model stays in memory at a time (cases are ordered by model); its dense weights are
snapshotted to CPU once and put back after every compressed case.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks import Benchmark, BenchmarkResult
from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.engine import agreement
from pytest_knowledge.engine.agreement import Agreement
from pytest_knowledge.engine.export import export_case
from pytest_knowledge.engine.loading import load
from pytest_knowledge.engine.references import check_same_vocabulary, vocabulary_digest
from pytest_knowledge.methods import CompressionContext, MethodReport
from pytest_knowledge.suite.parse import BenchmarkEntry, Case, ModelEntry

log = logging.getLogger("pytest_knowledge")


class DenseSnapshot:
    """Everything needed to undo any method in memory: module objects, parameter objects,
    and a CPU copy of every tensor's dense values."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.modules = dict(model.named_modules(remove_duplicate=False))
        self.parameters = dict(model.named_parameters(remove_duplicate=False))
        self.buffers = dict(model.named_buffers(remove_duplicate=False))
        self.names = {*self.parameters, *self.buffers}
        self.hooks = {
            name: (dict(m._forward_pre_hooks), dict(m._forward_hooks)) for name, m in self.modules.items()
        }
        self.values: dict[int, torch.Tensor] = {}
        for tensor in [*self.parameters.values(), *self.buffers.values()]:
            if id(tensor) not in self.values:
                self.values[id(tensor)] = tensor.detach().to("cpu", copy=True)

    def _owner(self, name: str) -> tuple[nn.Module, str]:
        parent, _, attr = name.rpartition(".")
        return self.modules[parent], attr

    def restore(self) -> None:
        """Put back swapped modules, replaced parameters, hooks and dense values."""
        for name, module in self.modules.items():
            if name:
                owner, attr = self._owner(name)
                if owner._modules.get(attr) is not module:
                    owner._modules[attr] = module
        for name, param in self.parameters.items():
            owner, attr = self._owner(name)
            if owner._parameters.get(attr) is not param:
                owner._parameters.pop(attr, None)
                owner.__dict__.pop(attr, None)
                owner._parameters[attr] = param
        for name, buffer in self.buffers.items():
            owner, attr = self._owner(name)
            owner._buffers[attr] = buffer
        for name, module in self.modules.items():
            pre_hooks, hooks = self.hooks[name]
            if dict(module._forward_pre_hooks) != pre_hooks or dict(module._forward_hooks) != hooks:
                module._forward_pre_hooks.clear()
                module._forward_pre_hooks.update(pre_hooks)
                module._forward_hooks.clear()
                module._forward_hooks.update(hooks)
        with torch.no_grad():
            for tensor in [*self.parameters.values(), *self.buffers.values()]:
                tensor.copy_(self.values[id(tensor)])



@dataclass(frozen=True)
class Distributions:
    """A dense model's next-token distributions on the agreement texts, and which vocabulary they are over."""

    texts: list[str]
    log_probs: torch.Tensor
    vocabulary: str
    size: int


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


PROBE_TEXT = "The capital of France is Paris."


def outputs_finite(loaded: LoadedModel) -> bool:
    """One short forward pass: NaN/inf logits would otherwise rank as ties and score as hits."""
    encoded = loaded.tokenizer(PROBE_TEXT, return_tensors="pt").to(loaded.device)
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    if loaded.family == "encoder-decoder":
        start = loaded.model.config.decoder_start_token_id or 0
        inputs["decoder_input_ids"] = torch.tensor([[start]], device=loaded.device)
    with torch.inference_mode():
        return bool(torch.isfinite(loaded.model(**inputs).logits.float()).all())


def combine_reports(reports: list[MethodReport]) -> MethodReport:
    """One report for a pipeline: the last step's sparsity and bits, every step's details."""
    if len(reports) == 1:
        return reports[0]
    return MethodReport(
        touched_parameters=max(r.touched_parameters for r in reports),
        sparsity=next((r.sparsity for r in reversed(reports) if r.sparsity is not None), None),
        sparsity_by_scope={k: v for r in reports for k, v in r.sparsity_by_scope.items()},
        bits=next((r.bits for r in reversed(reports) if r.bits is not None), None),
        details=" then ".join(r.details for r in reports if r.details),
    )


class Workbench:
    """The loaded model of this process and its dense snapshot; compresses, evaluates, restores."""

    def __init__(self, device: str | None = None, threads: int | None = None):
        self.device = device
        if threads is not None:
            torch.set_num_threads(threads)  # this worker's share of the CPU cores
        self._model_key: ModelEntry | None = None
        self._loaded: LoadedModel | None = None
        self._snapshot: DenseSnapshot | None = None
        self._failed: dict[ModelEntry, KnowledgeError] = {}
        self._agreement: dict[tuple[ModelEntry, BenchmarkEntry], Distributions] = {}

    def model(self, entry: ModelEntry) -> LoadedModel:
        if entry in self._failed:
            raise self._failed[entry]
        if self._model_key != entry:
            self._loaded = self._snapshot = None  # free the previous model first
            log.info("loading model %s from %s", entry.name, entry.source)
            try:
                self._loaded = load(entry.name, entry.source, entry.family, entry.dtype, self.device, entry.trust_remote_code)
            except KnowledgeError as error:
                self._failed[entry] = error
                raise
            self._snapshot = DenseSnapshot(self._loaded.model)
            self._model_key = entry
        assert self._loaded is not None
        return self._loaded

    def evaluate_dense(self, entry: ModelEntry, benchmark: Benchmark) -> BenchmarkResult:
        loaded = self.model(entry)
        log.info("scoring %s dense", entry.name)
        return benchmark.evaluate(loaded)

    def compress(self, case: Case, loaded: LoadedModel) -> MethodReport:
        """Apply every step of the case's method; the caller restores afterwards."""
        assert case.method is not None
        context = CompressionContext(loaded.family, case.seed, loaded.tokenizer)
        reports = []
        for step in case.method.steps:
            _seed(case.seed)
            ratio = case.ratio if step.method.ratio is not None else None
            reports.append(step.method.apply(loaded.model, step.config, ratio, context))
        return combine_reports(reports)

    def _agreement_reference(self, entry: ModelEntry, case: Case, benchmark: Benchmark) -> Distributions | None:
        """Texts and dense distributions of ``entry`` for agreement (computed while it is dense)."""
        key = (entry, case.benchmark)
        if key not in self._agreement:
            loaded = self.model(entry)
            if not agreement.supported(loaded):
                return None
            clozes = getattr(benchmark, "clozes", [])
            texts = agreement.agreement_texts([c.prefix.rstrip() for c in clozes])
            self._agreement[key] = Distributions(texts, agreement.reference(loaded, texts),
                                                 vocabulary_digest(loaded.tokenizer), len(loaded.tokenizer))
        return self._agreement[key]

    def evaluate_compressed(self, case: Case, benchmark: Benchmark, parent: ModelEntry | None = None,
                            export: Path | None = None) -> tuple[BenchmarkResult, MethodReport | None, Agreement | None]:
        """The case's model compressed by its method (an artifact: as loaded, or compressed on top),
        evaluated and compared with the dense distributions of its reference, else its own; then
        written under ``export`` when given, and restored."""
        dense_reference = self._agreement_reference(parent or case.model, case, benchmark)
        loaded = self.model(case.model)
        if parent is not None and dense_reference is not None:
            check_same_vocabulary(case, dense_reference.vocabulary, dense_reference.size, loaded.tokenizer)
        assert self._snapshot is not None
        try:
            if case.method is not None:
                log.info("%s: compressing", case.id)
            report = self.compress(case, loaded) if case.method is not None else None
            if not outputs_finite(loaded):
                state = report.summary() if report else "as loaded"
                raise KnowledgeError(f"{case.id}: the compressed model outputs NaN/inf logits ({state})")
            log.info("%s: scoring", case.id)
            result = benchmark.evaluate(loaded)
            agreed = agreement.compare(loaded, dense_reference.texts, dense_reference.log_probs) if dense_reference else None
            if export is not None and report is not None:
                export_case(export, case, loaded, self._snapshot.names, report, result)
            return result, report, agreed
        except torch.OutOfMemoryError as error:
            raise KnowledgeError(f"{case.id}: out of memory while compressing or evaluating ({error})") from None
        finally:
            log.info("%s: restoring the dense weights", case.id)
            self._snapshot.restore()
