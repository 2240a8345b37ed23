"""Suite files: YAML → validated, typed objects → the grid of cases.

A suite names models, methods, ratios, benchmarks and tolerances. Every problem is a
``SuiteError`` naming the file, the key path (``methods[1].scope``) and what was
expected, raised before anything runs or is written.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_knowledge.api.models import DTYPES, FAMILIES
from pytest_knowledge.benchmarks import BENCHMARKS
from pytest_knowledge.core.config import build, closest, coerce
from pytest_knowledge.core.errors import SuiteError
from pytest_knowledge.methods import METHODS, Method
from pytest_knowledge.methods.base import RatioSpec
from pytest_knowledge.suite.tolerance import Tolerance, TolerancePolicy, parse_policy

DENSE = "dense"
SUITE_KEYS = ("name", "description", "models", "methods", "ratios", "benchmarks", "tolerance")
# Always used with ``fullmatch``: ``$`` also matches before a trailing newline, and a name
# becomes a folder and file name under the baselines.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+]*")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
MAX_TEXT = 4096  # characters in one string: a path, a name, the description
MAX_SIZE = 100_000  # values plus characters in the whole document, counting an alias at every use


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str
    family: str | None = None
    dtype: str = "auto"
    trust_remote_code: bool = False
    reference: str | None = None  # the model this one was compressed from: its dense result is "dense" here


@dataclass(frozen=True)
class MethodStep:
    """One method applied with one config; a method entry is one or more steps."""

    method: Method
    config: Any


@dataclass(frozen=True)
class MethodEntry:
    name: str
    steps: tuple[MethodStep, ...]
    ratios: tuple[float, ...] | None

    @property
    def ratio_spec(self) -> RatioSpec | None:
        """The ratio meaning of the steps that take one (a pipeline passes the ratio to each)."""
        specs = {s.method.ratio for s in self.steps if s.method.ratio is not None}
        return next(iter(specs)) if specs else None


@dataclass(frozen=True)
class BenchmarkEntry:
    name: str
    kind: str  # the registered benchmark the suite's ``benchmark:`` key names ("facts", "lama", ...)
    config: Any
    models: tuple[str, ...] | None = None  # None: every model of the suite

    def applies_to(self, model: ModelEntry) -> bool:
        return self.models is None or model.name in self.models


@dataclass(frozen=True)
class Case:
    """One test: a model, compressed by a method at a ratio (or dense), probed by a benchmark."""

    suite: str
    model: ModelEntry
    method: MethodEntry | None
    ratio: float | None
    benchmark: BenchmarkEntry
    tolerance: Tolerance
    parent: ModelEntry | None = None  # the suite's entry named by ``model.reference``, if there is one

    @property
    def compared_with_dense(self) -> bool:
        """Compressed cases and artifacts with a reference are judged against a dense result."""
        return self.method is not None or self.model.reference is not None

    @property
    def method_name(self) -> str:
        return self.method.name if self.method else DENSE

    @property
    def id(self) -> str:
        """``{model}-{method}[-{ratio}]-{benchmark}``; dense cases use the method name 'dense'."""
        parts = [self.model.name, self.method_name]
        if self.ratio is not None:
            parts.append(format_ratio(self.ratio))
        parts.append(self.benchmark.name)
        return "-".join(parts)

    @property
    def seed(self) -> int:
        """Stable per case, so random methods are reproducible and independent of order."""
        return zlib.crc32(self.id.encode())


def format_ratio(ratio: float) -> str:
    """0.5 → '0.50', 4 → '4', 0.125 → '0.125': short, stable and distinct."""
    if float(ratio).is_integer() and ratio >= 1:
        return str(int(ratio))
    text = f"{ratio:.2f}"
    return text if float(text) == ratio else repr(float(ratio))


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    models: tuple[ModelEntry, ...]
    methods: tuple[MethodEntry, ...]
    benchmarks: tuple[BenchmarkEntry, ...]
    ratios: tuple[float, ...]
    tolerance: TolerancePolicy

    def cases(self) -> list[Case]:
        """The grid: per model and benchmark, the dense reference then every method × ratio."""
        cases = []
        by_name = {m.name: m for m in self.models}
        for model in self.models:
            parent = by_name.get(model.reference) if model.reference else None
            for bench in (b for b in self.benchmarks if b.applies_to(model)):
                cases.append(Case(self.name, model, None, None, bench, self.tolerance.for_case(DENSE, bench.name), parent))
                for method in self.methods:
                    tolerance = self.tolerance.for_case(method.name, bench.name)
                    ratios: tuple[float | None, ...] = (
                        (method.ratios or self.ratios) if method.ratio_spec else (None,)
                    )
                    for ratio in ratios:
                        cases.append(Case(self.name, model, method, ratio, bench, tolerance, parent))
        return cases


def _entries(data: dict, key: str, required: bool) -> list[Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise SuiteError(key, "a non-empty list", value)
        return []
    if not isinstance(value, list):
        raise SuiteError(key, "a list", value)
    if required and not value:
        raise SuiteError(key, "a non-empty list (the grid would be empty)", value)
    return value


def _split(entry: Any, key: str, kind_key: str) -> tuple[str, str, dict]:
    """An entry is a bare name or a mapping with ``name`` and ``kind_key`` plus parameters."""
    if isinstance(entry, str):
        return entry, entry, {}
    if not isinstance(entry, dict):
        raise SuiteError(key, f"a name or a mapping with 'name' and '{kind_key}'", entry)
    params = dict(entry)
    kind = params.pop(kind_key, params.get("name"))
    name = params.pop("name", kind if isinstance(kind, str) else None)
    if not isinstance(name, str):
        raise SuiteError(f"{key}.name", "a string naming this entry", name)
    return name, kind, params


def _check_name(name: str, key: str, pattern: re.Pattern[str], seen: set[str]) -> None:
    if not pattern.fullmatch(name):
        raise SuiteError(f"{key}.name", f"letters, digits, '_', '.', '+'{', -' if pattern is _MODEL_NAME else ''} only", name)
    if name in seen:
        raise SuiteError(f"{key}.name", "a name not used by another entry", name)
    seen.add(name)


def _model(entry: Any, key: str) -> ModelEntry:
    if isinstance(entry, str):
        return ModelEntry(entry, entry)
    if not isinstance(entry, dict):
        raise SuiteError(key, "a model name or a mapping with 'name'", entry)
    data = dict(entry)
    if "name" not in data:
        raise SuiteError(f"{key}.name", "a string naming the model", None)
    data.setdefault("source", data["name"])
    model = build(ModelEntry, data, key)
    if model.family is not None and model.family not in FAMILIES:
        raise SuiteError(f"{key}.family", "one of " + ", ".join(FAMILIES), model.family)
    if model.dtype not in DTYPES:
        raise SuiteError(f"{key}.dtype", "one of " + ", ".join(DTYPES), model.dtype)
    return model


def _step(spec: Any, key: str) -> MethodStep:
    if isinstance(spec, str):
        spec = {"method": spec}
    if not isinstance(spec, dict):
        raise SuiteError(key, "a method name or a mapping with 'method'", spec)
    params = dict(spec)
    method = METHODS.lookup(params.pop("method", None), f"{key}.method")
    return MethodStep(method, build(method.config, params, key))


def _method(entry: Any, key: str, ratios: tuple[float, ...]) -> MethodEntry:
    name, kind, params = _split(entry, key, "method")
    own_ratios = params.pop("ratios", None)
    if isinstance(kind, list):  # a pipeline: steps applied in order
        if params:
            raise SuiteError(f"{key}.{sorted(params)[0]}", "parameters inside the pipeline's steps", sorted(params)[0])
        if not kind:
            raise SuiteError(f"{key}.method", "at least one step", kind)
        steps = tuple(_step(s, f"{key}.method[{i}]") for i, s in enumerate(kind))
    else:
        method = METHODS.lookup(kind, f"{key}.method")
        steps = (MethodStep(method, build(method.config, params, key)),)
    if own_ratios is not None:
        own_ratios = coerce(own_ratios, tuple[float, ...], f"{key}.ratios")
    entry_ = MethodEntry(name, steps, own_ratios)
    spec = entry_.ratio_spec
    specs = {s.method.ratio for s in steps if s.method.ratio is not None}
    if len(specs) > 1:
        raise SuiteError(f"{key}.method", "steps whose ratios mean the same thing", [s.method.name for s in steps])
    if spec is None:
        if own_ratios:
            raise SuiteError(f"{key}.ratios", f"no ratios: method {name!r} takes none", list(own_ratios))
        return entry_
    chosen, where = (own_ratios, f"{key}.ratios") if own_ratios is not None else (ratios, "ratios")
    if not chosen:
        raise SuiteError(where, f"at least one ratio for method {name!r} ({spec.meaning})", list(chosen or ()))
    for i, ratio in enumerate(chosen):
        problem = spec.problem(ratio)
        if problem:
            hint = "" if own_ratios is not None else f" (set {key}.ratios for this method)"
            raise SuiteError(f"{where}[{i}]", f"{problem} for method {name!r}{hint}", ratio)
    return entry_


def _benchmark(entry: Any, key: str, models: list[ModelEntry]) -> BenchmarkEntry:
    name, kind, params = _split(entry, key, "benchmark")
    kind_ = BENCHMARKS.lookup(kind, f"{key}.benchmark")
    only = params.pop("models", None)
    if only is not None:
        only = coerce(only, tuple[str, ...], f"{key}.models")
        known = [m.name for m in models]
        for i, model in enumerate(only):
            if model not in known:
                raise SuiteError(f"{key}.models[{i}]", f"a model name of this suite ({', '.join(known)})", model)
    return BenchmarkEntry(name, kind_.name, build(kind_.config, params, key), only)


def _check_size(data: Any) -> None:
    """Refuse a document too large to be a suite before reading any key.

    A YAML alias bomb is a few lines that expand to billions of values through shared
    references; anything that walks or prints it (an error message included) never ends.
    """
    left = MAX_SIZE
    stack: list[tuple[str, Any]] = [("(top level)", data)]
    while stack:
        key, value = stack.pop()
        left -= 1 + (len(value) if isinstance(value, str) else 0)
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise SuiteError(key, f"a string of at most {MAX_TEXT} characters", f"{len(value)} characters")
        if left < 0:
            raise SuiteError(key.partition("[")[0].partition(".")[0],
                             f"a suite of at most {MAX_SIZE} values and characters (each use of a YAML alias counts)")
        if isinstance(value, dict):
            prefix = "" if key == "(top level)" else f"{key}."
            for name, item in value.items():
                stack += [(f"{prefix}{name}", name), (f"{prefix}{name}", item)]
        elif isinstance(value, list):
            stack += [(f"{key}[{i}]", v) for i, v in enumerate(value)]


def parse_suite(data: Any, path: Path) -> Suite:
    """Validate a loaded YAML document; errors are not yet tied to a file."""
    _check_size(data)
    if not isinstance(data, dict):
        raise SuiteError("(top level)", "a mapping with models, methods, ratios, benchmarks", type(data).__name__)
    for key in data:
        if key not in SUITE_KEYS:
            raise SuiteError(str(key), f"a suite key ({', '.join(SUITE_KEYS)}){closest(str(key), SUITE_KEYS)}", key)
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise SuiteError("description", "a string describing the suite", type(description).__name__)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise SuiteError("name", "a suite name of letters, digits, '_', '.', '+', '-'", name)
    ratios = coerce(data.get("ratios") or [], tuple[float, ...], "ratios")
    if len(set(ratios)) != len(ratios):
        raise SuiteError("ratios", "distinct values", list(ratios))
    seen: dict[str, set[str]] = {"models": set(), "methods": {DENSE}, "benchmarks": set()}
    models = []
    for i, entry in enumerate(_entries(data, "models", required=True)):
        model = _model(entry, f"models[{i}]")
        _check_name(model.name, f"models[{i}]", _MODEL_NAME, seen["models"])
        models.append(model)
    methods = []
    for i, entry in enumerate(_entries(data, "methods", required=False)):
        method = _method(entry, f"methods[{i}]", ratios)
        _check_name(method.name, f"methods[{i}]", _NAME, seen["methods"])
        methods.append(method)
    benchmarks = []
    for i, entry in enumerate(_entries(data, "benchmarks", required=True)):
        bench = _benchmark(entry, f"benchmarks[{i}]", models)
        _check_name(bench.name, f"benchmarks[{i}]", _NAME, seen["benchmarks"])
        benchmarks.append(bench)
    policy = parse_policy(data.get("tolerance"), "tolerance", seen["methods"], seen["benchmarks"])
    for i, model in enumerate(models):
        if not any(b.applies_to(model) for b in benchmarks):
            raise SuiteError(f"models[{i}]", "at least one benchmark that applies to this model", model.name)
    return Suite(name, path, tuple(models), tuple(methods), tuple(benchmarks), ratios, policy)


def load_suite(path: Path) -> Suite:
    """Read and validate one suite file; every error names ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SuiteError("(file)", "a readable suite file", str(error), file=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        raise SuiteError(where, "valid YAML", getattr(error, "problem", str(error)), file=path) from None
    try:
        return parse_suite(data, path)
    except SuiteError as error:
        raise error.in_file(path) from None


def suite_files(target: Path) -> list[Path]:
    """A suite file, or every ``*.yaml``/``*.yml`` in a folder (sorted)."""
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise SuiteError("--knowledge-suite", "a folder containing *.yaml suite files", str(target))
        return files
    if not target.is_file():
        raise SuiteError("--knowledge-suite", "an existing suite file or folder", str(target))
    return [target]
