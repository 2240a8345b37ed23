"""Models that ship inside PyPI packages, registered by the name suites use. One module per model."""

from pytest_knowledge.models import smollm2  # noqa: F401  (registration side effect)
