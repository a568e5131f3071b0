"""The ``Connector`` protocol users type against; ``connectors.connect`` returns a
``Collection`` that implements it. A database is one ``Engine`` subclass
(``connectors.engine``), one row in ``connectors.registry`` and one fixture in the contract
suite.

Score scales (they differ by mode, as in the databases themselves):

- ``dense``: dot product of normalised vectors (= cosine), as FlagEmbedding's dense score.
- ``sparse``: sum over shared token ids of q_w * p_w, as FlagEmbedding's lexical score
  (Elasticsearch keeps ~9 significant bits of each stored weight).
- ``colbert``: MaxSim as the databases compute it: the SUM over query rows of the best dot
  product. FlagEmbedding's colbert score is that sum divided by the number of query rows.
- ``hybrid``: the fusion score of the database (RRF: sum of 1/(k + rank); weighted: the
  database's weighted formula), or, when ``rerank`` is on, the ColBERT MaxSim (sum).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from m3vdb.errors import InputError
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.filters import Filter
from m3vdb.schemas.spec import IndexSpec

SearchMode = Literal["dense", "sparse", "colbert", "hybrid"]
Fusion = Literal["rrf", "weighted"]
FilterLike = Filter | Mapping[str, Any] | None
# What upsert takes: documents to encode, or (document, precomputed embedding) pairs.
UpsertItem = Document | tuple[Document, M3Embedding]
# Milvus's RRFRanker takes k in (0, 16384); Elasticsearch and Qdrant take any k >= 1.
MAX_RRF_K = 16383


@dataclass(frozen=True)
class HybridOptions:
    """How ``mode="hybrid"`` fuses and reranks; checked once, here, for every backend.

    Attributes:
        fusion: "rrf" (reciprocal rank fusion) or "weighted" (weighted sum of the scores as the
            database defines it).
        rrf_k: the RRF constant k in 1 / (k + rank), an int in [1, 16383] (Milvus's range,
            the narrowest of the three databases).
        weights: (dense, sparse) weights for ``fusion="weighted"``, each in [0, 1] (Milvus's
            range), not both 0.
        candidates: how many candidates each signal contributes before fusion, at least the
            search's k (default: max(4 * k, 50)).
        rerank: rerank the fused candidates by ColBERT MaxSim when the collection stores
            ColBERT vectors.

    Raises:
        InputError: a value outside the ranges above.
        TypeError: a value of the wrong type.
    """

    fusion: Fusion = "rrf"
    rrf_k: int = 60
    weights: tuple[float, float] = (0.5, 0.5)
    candidates: int | None = None
    rerank: bool = True

    def __post_init__(self) -> None:
        if self.fusion not in ("rrf", "weighted"):
            raise InputError(f"fusion must be 'rrf' or 'weighted', got {self.fusion!r}")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int):
            raise TypeError(f"rrf_k must be an int, got {type(self.rrf_k).__name__}")
        if not 1 <= self.rrf_k <= MAX_RRF_K:
            raise InputError(f"rrf_k must be in [1, {MAX_RRF_K}], got {self.rrf_k}")
        weights = tuple(self.weights)
        if len(weights) != 2 or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights
        ):
            raise TypeError(f"weights must be two numbers (dense, sparse), got {self.weights!r}")
        if not all(math.isfinite(w) and 0 <= w <= 1 for w in weights) or not any(weights):
            raise InputError(
                f"weights must each lie in [0, 1] and not both be 0, got {self.weights!r}"
            )
        object.__setattr__(self, "weights", (float(weights[0]), float(weights[1])))
        if self.candidates is not None:
            if isinstance(self.candidates, bool) or not isinstance(self.candidates, int):
                raise TypeError(f"candidates must be an int, got {type(self.candidates).__name__}")
            if self.candidates <= 0:
                raise InputError(f"candidates must be positive, got {self.candidates}")
        if not isinstance(self.rerank, bool):
            raise TypeError(f"rerank must be a bool, got {type(self.rerank).__name__}")

    def candidate_count(self, k: int) -> int:
        """Candidates per signal for a search of ``k`` results."""
        return self.candidates if self.candidates is not None else max(4 * k, 50)


@runtime_checkable
class Connector(Protocol):
    """A collection in one database holding BGE-M3 representations in native fields.

    The implementation: ``m3vdb.connectors.collection.Collection`` (what ``connect`` returns,
    over each database's ``Engine``), a context manager that calls :meth:`close` on exit.
    """

    @property
    def collection(self) -> str:
        """The collection (index) name."""
        ...

    @property
    def spec(self) -> IndexSpec:
        """What the collection stores."""
        ...

    def upsert(
        self,
        items: Iterable[UpsertItem],
        *,
        batch_size: int = 64,
        show_progress: bool = False,
    ) -> int:
        """Encodes (unless embeddings are given) and writes documents, idempotent by id.

        Streams ``items`` in batches of ``batch_size``: the corpus is never held in memory.
        A batch is validated completely before anything of it is written. Transient
        database errors are retried with backoff. Returns the number of documents written.
        """
        ...

    def search(
        self,
        query: str | M3Embedding,
        k: int = 10,
        *,
        mode: SearchMode = "hybrid",
        filter: FilterLike = None,
        hybrid: HybridOptions | None = None,
        group: bool = False,
    ) -> list[Hit]:
        """Top-``k`` documents for ``query`` in one database request where the database allows.

        ``filter`` applies to every stage. See the module docstring for the score scales.
        """
        ...

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in the order given; missing ids are left out."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Deletes these ids (and anything stored for them); unknown ids are ignored."""
        ...

    def delete_where(self, filter: FilterLike) -> None:
        """Deletes every document matching ``filter``."""
        ...

    def count(self) -> int:
        """Number of documents stored."""
        ...

    def drop(self) -> None:
        """Deletes the collection and everything the connector created for it."""
        ...

    def close(self) -> None:
        """Releases the client if the connector created it (from a URL); a client passed in
        stays open. The collection and its data stay."""
        ...


@runtime_checkable
class SupportsScan(Protocol):
    """A connector that can list its documents by filter (no query vector): what the
    LlamaIndex and Haystack stores need for ``get_nodes``, ``delete(ref_doc_id)`` and
    ``filter_documents``. Milvus, Qdrant and Elasticsearch implement it."""

    def scan(self, filter: FilterLike = None, *, batch_size: int = 1000) -> Iterator[Document]:
        """Every stored document matching ``filter`` (all without one); order unspecified."""
        ...
