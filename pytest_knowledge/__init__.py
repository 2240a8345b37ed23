"""pytest-knowledge: gate compressed language models on the facts they still know."""

__version__ = "0.1.0"
