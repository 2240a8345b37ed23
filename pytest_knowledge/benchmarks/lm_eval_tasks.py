"""lm-evaluation-harness tasks, run by lm-eval itself on the in-memory (compressed) model.

Any lm-eval task works by name (boolq, piqa, winogrande, … where their data is
available); offline, tasks with local data come from ``include_path`` — by default the
small tasks bundled in ``pytest_knowledge/tasks``. Relative ``data_files`` in a task's
YAML are read relative to ``include_path``, which may use environment variables and is
resolved when a case runs (see ``paths``). Task names and their data are looked up when a
case runs too, so a suite of hub tasks collects offline. The headline value is the task's
own metric; its standard error and the other metrics go to ``extra``.

A task folder can run code: ``!function`` makes lm-eval import Python next to the YAML,
and its Jinja templates are not sandboxed. Unless the entry sets ``trust_task_code:
true``, a folder naming ``!function`` is refused and templates render in Jinja's sandbox.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.base import (
    BenchmarkResult,
    digest,
    encode_outcomes,
    register_benchmark,
)
from pytest_knowledge.benchmarks.paths import data_path, path_problem
from pytest_knowledge.core.config import closest
from pytest_knowledge.core.errors import KnowledgeError

BUNDLED_TASKS = Path(__file__).resolve().parents[1] / "tasks"
BACKENDS = {"decoder": "causal", "encoder-decoder": "seq2seq"}


@dataclass(frozen=True)
class LmEvalConfig:
    task: str
    include_path: str | None = None
    metric: str | None = None
    filter: str = "none"
    limit: int | None = None
    num_fewshot: int | None = None
    batch_size: int = 16
    bootstrap_iters: int = 1000
    seed: int = 0
    trust_task_code: bool = False  # let include_path's tasks import Python (!function) and use unsandboxed templates

    def validate(self) -> str | None:
        problem = path_problem("include_path", self.include_path)  # existence is checked when a case runs
        if problem:
            return problem
        if self.limit is not None and self.limit < 1:
            return "limit >= 1"
        if (self.num_fewshot or 0) < 0 or self.batch_size < 1 or self.bootstrap_iters < 0:
            return "num_fewshot >= 0, batch_size >= 1, bootstrap_iters >= 0"
        return None


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _evaluating(model: Any) -> Iterator[None]:
    """Guards around lm-eval's handling of a model it did not load.

    HFLM calls ``model.tie_weights()``, which would re-tie a pruned ``lm_head`` to the
    embeddings, so it becomes a no-op; the KV cache is off because some pruned models
    break with it; ``DISABLE_MULTIPROC`` keeps bootstrap stderr in this process instead
    of a pool of one worker per CPU.
    """
    config = model.config
    had_use_cache, use_cache = hasattr(config, "use_cache"), getattr(config, "use_cache", None)
    multiproc = os.environ.get("DISABLE_MULTIPROC")
    model.tie_weights = lambda *args, **kwargs: None
    config.use_cache = False
    os.environ["DISABLE_MULTIPROC"] = "1"
    try:
        yield
    finally:
        del model.tie_weights
        if had_use_cache:
            config.use_cache = use_cache
        else:
            del config.use_cache
        if multiproc is None:
            os.environ.pop("DISABLE_MULTIPROC", None)
        else:
            os.environ["DISABLE_MULTIPROC"] = multiproc


class _TaskYamlLoader(yaml.SafeLoader):
    """Reads task YAML as lm-eval does, but records each ``!function`` instead of importing it."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.functions: list[tuple[int, str]] = []


def _record_function(loader: _TaskYamlLoader, node: yaml.Node) -> str:
    loader.functions.append((node.start_mark.line + 1, str(node.value)))
    return str(node.value)


_TaskYamlLoader.add_constructor("!function", _record_function)


def python_functions(folder: Path) -> list[str]:
    """Every ``!function`` (as ``file:line name``) in the task YAML of ``folder`` and in the files they include."""
    found = []
    seen: set[Path] = set()
    pending = sorted(folder.glob("**/*.yaml")) + sorted(folder.glob("**/*.yml"))
    while pending:
        path = pending.pop(0).resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        loader = _TaskYamlLoader(text)
        try:
            data = loader.get_single_data()
        except yaml.YAMLError:  # lm-eval skips a file it cannot read; the text check below still applies
            data = None
        finally:
            loader.dispose()
        functions = loader.functions or [(i + 1, "") for i, line in enumerate(text.splitlines()) if "!function" in line]
        found += [f"{path}:{line} !function {name}".rstrip() for line, name in functions]
        includes = data.get("include") if isinstance(data, dict) else None
        for include in includes if isinstance(includes, list) else [includes] if includes else []:
            pending.append(path.parent / str(include))
    return found


@contextlib.contextmanager
def _templates(sandboxed: bool) -> Iterator[None]:
    """lm-eval renders every task template with one module-level Jinja environment, which
    is not sandboxed (a template can reach ``os``); swap in a sandboxed one while it runs."""
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import SandboxedEnvironment
    from lm_eval import utils

    if not sandboxed:
        yield
        return
    original = utils.env
    sandbox = SandboxedEnvironment(loader=original.loader, undefined=original.undefined,
                                   keep_trailing_newline=original.keep_trailing_newline)
    sandbox.filters.update(original.filters)
    utils.env = sandbox
    try:
        yield
    except SecurityError as error:
        raise KnowledgeError(f"benchmark lm_eval: Jinja's sandbox stopped a task template ({error}). Set "
                             "'trust_task_code: true' on this benchmark entry only if you trust its tasks") from error
    finally:
        utils.env = original


def _untrusted_code(folder: Path) -> None:
    """Refuse a task folder that makes lm-eval import Python, unless the entry trusts it."""
    functions = python_functions(folder)
    if functions:
        shown = "; ".join(functions[:3]) + (f"; and {len(functions) - 3} more" if len(functions) > 3 else "")
        raise KnowledgeError(
            f"benchmark lm_eval: include_path {folder} has task YAML that runs Python ({shown}): lm-eval would "
            "import and run that code in this process with your rights. Set 'trust_task_code: true' on this "
            "benchmark entry only if you trust every file in that folder")


def _load_task(name: str, folder: Path) -> tuple[Any, Any]:
    """The task and the manager that found it; lm-eval's own task index is read only when needed (slow)."""
    from jinja2.exceptions import SecurityError
    from lm_eval.tasks import TaskManager

    with _working_directory(folder):
        manager = TaskManager(include_path=str(folder), include_defaults=False)
        if name not in manager.all_tasks:
            manager = TaskManager(include_path=str(folder))
        if name not in manager.all_tasks:
            raise KnowledgeError(f"benchmark lm_eval: unknown task {name!r}{closest(name, manager.all_tasks)} "
                                 f"(tasks come from lm-eval and from {folder})")
        try:
            loaded = manager.load(name)
        except SecurityError:  # a template the sandbox stopped: explained by ``_templates``
            raise
        except Exception as error:  # datasets/hub failures come in many types
            raise KnowledgeError(
                f"benchmark lm_eval: the data of task {name!r} is not available ({type(error).__name__}: {error}). "
                "Offline, use a task with local data: a YAML with 'dataset_path: json' in include_path"
            ) from error
    if loaded["groups"] or name not in loaded["tasks"]:
        raise KnowledgeError(f"benchmark lm_eval: {name!r} is a group of tasks; name one of its tasks "
                             f"({', '.join(sorted(loaded['tasks']))})")
    return loaded["tasks"][name], manager


@register_benchmark("lm_eval", LmEvalConfig)
class LmEvalBenchmark:
    metric = "acc"  # the class defaults; each instance takes its task's metric and direction
    higher_is_better = True
    version = 2  # results carry document ids

    def __init__(self, config: LmEvalConfig):
        self.config = config
        folder = (data_path(config.include_path, benchmark="lm_eval", parameter="include_path", kind="dir",
                            how_to_get="It should hold task YAML files")
                  if config.include_path else BUNDLED_TASKS)
        if config.include_path and not config.trust_task_code:
            _untrusted_code(folder.resolve())
        with self._templates():
            self.task, self.manager = _load_task(config.task, folder.resolve())
        metrics = self.task.higher_is_better()
        self.metric = config.metric or next(iter(metrics), "acc")
        if self.metric not in metrics:
            raise KnowledgeError(f"benchmark lm_eval: task {config.task!r} has no metric {self.metric!r} "
                                 f"(it has {', '.join(metrics)})")
        self.higher_is_better = bool(metrics[self.metric])

    def _templates(self) -> contextlib.AbstractContextManager[None]:
        return _templates(sandboxed=not self.config.trust_task_code)

    def data_fingerprint(self) -> str:
        """The evaluated documents as the model sees them: prompt, target and choices."""
        task = self.task
        docs = list(task.eval_docs)[: self.config.limit]
        choices = task.OUTPUT_TYPE == "multiple_choice"
        with self._templates():
            shown = [(task.doc_to_text(d), task.doc_to_target(d), task.doc_to_choice(d) if choices else None)
                     for d in docs]
        return digest(self.config.task, self.config.num_fewshot, self.config.seed, shown)

    def evaluate(self, loaded: LoadedModel) -> BenchmarkResult:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM

        if loaded.family not in BACKENDS:
            raise KnowledgeError(f"benchmark lm_eval: model {loaded.name!r} is an {loaded.family} model; lm-eval "
                                 "runs decoder and encoder-decoder models only")
        seed = self.config.seed
        with _evaluating(loaded.model), self._templates():
            lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, backend=BACKENDS[loaded.family],
                      batch_size=self.config.batch_size)
            output = simple_evaluate(
                model=lm, tasks=[self.task], task_manager=self.manager, num_fewshot=self.config.num_fewshot,
                limit=self.config.limit, bootstrap_iters=self.config.bootstrap_iters,
                use_cache=None, cache_requests=False, log_samples=True,
                random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
            )
        return self._result(output)

    def _result(self, output: dict) -> BenchmarkResult:
        name, wanted = self.config.task, self.config.filter
        scores = output["results"][name]
        key = f"{self.metric},{wanted}"
        if key not in scores:
            found = sorted(k for k in scores if "," in k and "_stderr" not in k)
            raise KnowledgeError(f"benchmark lm_eval: task {name!r} reported no {key!r} (it reported {', '.join(found)})")
        extra = {}
        for full, value in scores.items():
            metric, _, filter_name = full.partition(",")
            if filter_name == wanted and full != key and isinstance(value, (int, float)):
                extra[metric] = float(value)
        samples = sorted((s for s in output["samples"][name] if s.get("filter") == wanted), key=lambda s: s["doc_id"])
        values = [s.get(self.metric) for s in samples]
        binary = bool(values) and all(v in (0, 1) for v in values)
        return BenchmarkResult(
            metric=self.metric,
            value=float(scores[key]),
            n=len(samples),
            higher_is_better=self.higher_is_better,
            outcomes=encode_outcomes([v == 1 for v in values]) if binary else None,
            extra=extra,
            example_ids=tuple(f"{name}/{s['doc_id']}" for s in samples) if binary else None,
        )
