"""File and folder parameters of benchmarks: written as-is in a suite, resolved when a case runs.

A path parameter may use environment variables (``${LAMA_DIR}/TREx`` or ``$LAMA_DIR/TREx``)
and ``~``; a relative path is read from the working directory. The text stays in the
config exactly as written, so a suite, its test ids and its cache keys are the same on
every machine, and a suite collects (``--co``) without its data. Only structural mistakes
(an empty path, an unclosed ``${``) stop a suite from loading; a path that is missing
fails each case that needs it, with a message naming the parameter, what it resolved to,
which variable is unset and where the data comes from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, Mapping

from pytest_knowledge.core.errors import KnowledgeError

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_UNCLOSED = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*\})")
Kind = Literal["any", "file", "dir"]
_EXPECTED = {"any": "an existing file or folder", "file": "an existing file", "dir": "an existing folder"}


def path_problem(name: str, value: str | None) -> str | None:
    """What is structurally wrong with a path parameter (checked when the suite loads), if anything."""
    if value is None:
        return None
    if not value.strip():
        return f"{name}: a non-empty path"
    if _UNCLOSED.search(value):
        return f"{name}: environment variables written as ${{NAME}} or $NAME (an unclosed '${{' in {value!r})"
    return None


def variables(value: str) -> list[str]:
    """The environment variables a path refers to, in order of appearance."""
    return [m.group(1) or m.group(2) for m in _VARIABLE.finditer(value)]


def expand(value: str, environ: Mapping[str, str] | None = None) -> tuple[Path, list[str]]:
    """``value`` with its variables and ``~`` expanded, and the variables that are not set."""
    env = os.environ if environ is None else environ
    unset = list(dict.fromkeys(name for name in variables(value) if not env.get(name)))
    text = _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2)) or m.group(0), value)
    return Path(text).expanduser(), unset


def data_path(value: str, *, benchmark: str, parameter: str, kind: Kind = "any", how_to_get: str = "",
              environ: Mapping[str, str] | None = None) -> Path:
    """The resolved path of one parameter, or a ``KnowledgeError`` saying why it cannot be used."""
    path, unset = expand(value, environ)
    expected = _EXPECTED[kind]
    hint = f". {how_to_get}" if how_to_get else ""
    if unset:
        names = f"variable {unset[0]} is" if len(unset) == 1 else f"variables {', '.join(unset)} are"
        raise KnowledgeError(f"benchmark {benchmark}: parameter {parameter!r}: expected {expected}, got {value!r} "
                             f"(environment {names} not set){hint}")
    absolute = path if path.is_absolute() else Path.cwd() / path
    found = absolute.is_dir() if kind == "dir" else absolute.is_file() if kind == "file" else absolute.exists()
    if not found:
        where = "" if str(path) == value else f", resolved to {str(path)!r}"
        relative = "" if path.is_absolute() else f"; relative paths are read from the working directory {Path.cwd()}"
        state = ("which does not exist" if not absolute.exists()
                 else "which is a folder" if absolute.is_dir() else "which is not a folder")
        raise KnowledgeError(f"benchmark {benchmark}: parameter {parameter!r}: expected {expected}, got {value!r}"
                             f"{where}, {state}{relative}{hint}")
    return path
