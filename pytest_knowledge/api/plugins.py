"""Where registered methods, benchmarks and models come from: this package's own modules,
then every installed package that declares an entry point in the ``pytest_knowledge`` group.

Registries load them on first lookup, so importing a registry (for a suite file's types,
say) imports no implementation, and a third-party package needs no conftest.py.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from pytest_knowledge.core.errors import KnowledgeError

GROUP = "pytest_knowledge"
BUILTIN = ("pytest_knowledge.methods", "pytest_knowledge.benchmarks", "pytest_knowledge.models",
           "pytest_knowledge.testing")
_state = {"loaded": False}


def load_plugins() -> None:
    """Import the built-in implementations and the entry points of ``GROUP``, once per process."""
    if _state["loaded"]:
        return
    _state["loaded"] = True  # set first: the modules imported here register into the registries
    for module in BUILTIN:
        importlib.import_module(module)
    for point in entry_points(group=GROUP):
        if point.value in BUILTIN:
            continue
        try:
            point.load()
        except Exception as error:  # a broken third-party package must say which one it is
            raise KnowledgeError(f"entry point {point.name!r} = {point.value!r} in group {GROUP!r} "
                                 f"failed to load: {type(error).__name__}: {error}") from error
