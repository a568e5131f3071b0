"""The data model shared by the encoder, the schemas and the connectors.

Frozen dataclasses typed with numpy arrays. Conversions from other shapes (FlagEmbedding's
``lexical_weights`` with string keys, lists of floats from a database) happen once, at the
edge, through the ``from_*`` constructors here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
# The smallest positive normal float32. Every engine stores sparse weights as float32; one
# below this is a subnormal there (Elasticsearch refuses it: "positive normal float"), and its
# share of any score is below float32 precision.
FLOAT32_MIN_NORMAL = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True, eq=False)
class M3Embedding:
    """The three BGE-M3 representations of one text.

    Attributes:
        dense: float32 ``(dim,)``, L2-normalised (the CLS hidden state).
        sparse: token id -> weight, every weight > 0 (special and unknown tokens removed).
        colbert: float32 ``(n_tokens - 1, dim)``, each row L2-normalised; the CLS row is not
            kept, the EOS row is.

    Any of the three is ``None`` when it was not requested. Equality is not defined on
    this class (arrays have no single truth value): compare fields with numpy.
    """

    dense: FloatArray | None = None
    sparse: dict[int, float] | None = None
    colbert: FloatArray | None = None

    @classmethod
    def from_flag_output(
        cls,
        dense: Any = None,
        lexical_weights: Mapping[Any, Any] | None = None,
        colbert_vecs: Any = None,
    ) -> M3Embedding:
        """Builds an embedding from FlagEmbedding-shaped values (string token ids, lists)."""
        return cls(
            dense=None if dense is None else np.asarray(dense, dtype=np.float32),
            sparse=None
            if lexical_weights is None
            else {int(k): float(v) for k, v in lexical_weights.items()},
            colbert=None if colbert_vecs is None else np.asarray(colbert_vecs, dtype=np.float32),
        )


@dataclass(frozen=True, eq=False)
class WindowEmbedding:
    """One token window of a long text, encoded on its own.

    Attributes:
        text_index: position of the source text in the input list.
        token_start: first content token of the window (0 = first token after CLS).
        token_end: one past the last content token of the window.
        char_start: offset in the source text where the window's first token begins.
        char_end: offset in the source text where the window's last token ends.
        text: ``source[char_start:char_end]``.
        embedding: the window's embedding (CLS + window tokens + EOS went through the model).
    """

    text_index: int
    token_start: int
    token_end: int
    char_start: int
    char_end: int
    text: str
    embedding: M3Embedding


@dataclass(frozen=True)
class Document:
    """A text to index: ``id`` is the primary key, ``metadata`` holds JSON-able scalars
    and lists (filterable where the schema declares the field)."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: the document id.
        score: the score the database ranked by (its scale depends on the mode: see
            ``connectors.base.Connector.search``).
        text: the stored text.
        metadata: the stored metadata.
        signal_scores: per-signal scores ("dense", "sparse", "colbert") when the database
            returned them; empty otherwise.
    """

    id: str
    score: float
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    signal_scores: Mapping[str, float] = field(default_factory=dict)
