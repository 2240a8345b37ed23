"""Build frozen config dataclasses from plain YAML values, with precise errors.

Methods and benchmarks declare their parameters as dataclass fields; this module is the
single place that checks a suite's mapping against those fields, so every parameter in
every plugin gets the same validation and the same error messages.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from pytest_knowledge.core.errors import SuiteError

T = TypeVar("T")


def closest(word: str, choices: typing.Iterable[str]) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def describe(tp: Any) -> str:
    """Human wording of a type hint, used in 'expected ...' messages."""
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in get_args(tp))
    if origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"a list of {describe(args[0])}" if args else "a list"
    if tp is type(None):
        return "null"
    if tp is float:
        return "a number"
    return {int: "an integer", str: "a string", bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the hint ``tp``; lists become tuples so configs stay hashable."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise SuiteError(key, describe(tp), value)
    if origin in (Union, types.UnionType):
        for option in get_args(tp):
            try:
                return coerce(value, option, key)
            except SuiteError:
                continue
        raise SuiteError(key, describe(tp), value)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise SuiteError(key, describe(tp), value)
        (item_tp, *_) = [a for a in get_args(tp) if a is not Ellipsis] or [Any]
        return tuple(coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is type(None):
        if value is None:
            return None
        raise SuiteError(key, "null", value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise SuiteError(key, "true or false", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SuiteError(key, "an integer", value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise SuiteError(key, "a number", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise SuiteError(key, "a string", value)
    raise TypeError(f"unsupported config field type {tp!r} at {key}")


def build(cls: type[T], data: Any, key: str) -> T:
    """Instantiate the dataclass ``cls`` from a mapping, naming ``key`` in every error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SuiteError(key, "a mapping", data)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in fields:
            known = ", ".join(sorted(fields)) or "no parameters"
            raise SuiteError(f"{key}.{name}", f"a known parameter ({known}){closest(str(name), fields)}", name)
        values[name] = coerce(value, hints[name], f"{key}.{name}")
    missing = [
        n for n, f in fields.items()
        if n not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SuiteError(f"{key}.{missing[0]}", f"a value for required parameter {missing[0]!r}")
    instance = cls(**values)
    check = getattr(instance, "validate", None)
    if check is not None:
        problem = check()
        if problem:
            raise SuiteError(key, problem, data)
    return instance


def to_plain(config: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
