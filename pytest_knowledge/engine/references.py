"""Artifacts judged against the model they were made from.

A model entry with ``reference: <model name>`` is a compressed checkpoint on disk (a GGUF
file, a compressed-tensors folder, an exported case); its cases evaluate it as it is, and
"dense" in retention, significance, agreement/KL and lost facts means the reference's dense
result on the same benchmark. Problems are errors of that entry's cases only, so the rest of
the suite still runs.
"""

from __future__ import annotations

import hashlib

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.suite.parse import Case, ModelEntry


def reference_of(case: Case) -> ModelEntry | None:
    """The entry whose dense result ``case`` is compared with (None: its own); raises when unusable."""
    name = case.model.reference
    if name is None:
        return None
    if name == case.model.name:
        raise KnowledgeError(f"model {case.model.name!r}: reference names the entry itself; "
                             "expected the name of the model this one was compressed from")
    if case.parent is None:
        raise KnowledgeError(f"model {case.model.name!r}: reference {name!r} is not a model of suite {case.suite!r}; "
                             f"expected the name of another entry under models (add {name!r} there)")
    if case.parent.reference is not None:
        raise KnowledgeError(f"model {case.model.name!r}: reference {name!r} has a reference itself "
                             f"({case.parent.reference!r}); expected a model without one — name "
                             f"{case.parent.reference!r} so every artifact is compared with the same dense model")
    return case.parent


def vocabulary_digest(tokenizer: object) -> str:
    """Identifies a vocabulary: agreement and KL compare distributions position by position."""
    vocab = sorted(tokenizer.get_vocab().items())  # type: ignore[attr-defined]
    return hashlib.sha256(repr(vocab).encode()).hexdigest()[:16]


def check_same_vocabulary(case: Case, reference_digest: str, reference_size: int, tokenizer: object) -> None:
    """Refuse an artifact whose tokenizer differs from its reference's: its next-token
    distributions are over other tokens, so top-1 agreement and KL would compare unrelated things."""
    if vocabulary_digest(tokenizer) != reference_digest:
        assert case.parent is not None
        raise KnowledgeError(
            f"model {case.model.name!r}: its tokenizer differs from that of its reference {case.parent.name!r} "
            f"({len(tokenizer)} vs {reference_size} tokens, or the same count with other tokens); expected the "  # type: ignore[arg-type]
            "reference's vocabulary, since top-1 agreement and KL compare next-token distributions token by token. "
            "Compare models with different tokenizers as separate entries without a reference"
        )
