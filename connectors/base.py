"""The one ``Connector`` protocol every database module implements.

Users type against :class:`Connector`; ``connectors.connect`` returns one. A database is one
module in this package exposing ``open_connector(target, collection=..., encoder=..., spec=...)``
(see ``connectors.registry``) and one fixture in the contract suite.

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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.filters import Filter
from m3vdb.schemas.spec import IndexSpec

SearchMode = Literal["dense", "sparse", "colbert", "hybrid"]
Fusion = Literal["rrf", "weighted"]
FilterLike = Filter | Mapping[str, Any] | None
# What upsert takes: documents to encode, or (document, precomputed embedding) pairs.
UpsertItem = Document | tuple[Document, M3Embedding]


@dataclass(frozen=True)
class HybridOptions:
    """How ``mode="hybrid"`` fuses and reranks.

    Attributes:
        fusion: "rrf" (reciprocal rank fusion) or "weighted" (weighted sum of the scores as the
            database defines it).
        rrf_k: the RRF constant k in 1 / (k + rank).
        weights: (dense, sparse) weights for ``fusion="weighted"``.
        candidates: how many candidates each signal contributes before fusion
            (default: max(4 * k, 50)).
        rerank: rerank the fused candidates by ColBERT MaxSim when the collection stores
            ColBERT vectors.
    """

    fusion: Fusion = "rrf"
    rrf_k: int = 60
    weights: tuple[float, float] = (0.5, 0.5)
    candidates: int | None = None
    rerank: bool = True

    def candidate_count(self, k: int) -> int:
        return self.candidates if self.candidates is not None else max(4 * k, 50)


@runtime_checkable
class Connector(Protocol):
    """A collection in one database holding BGE-M3 representations in native fields.

    Implementations: ``connectors.milvus.MilvusConnector``, ``connectors.qdrant.QdrantConnector``,
    ``connectors.elasticsearch.ElasticsearchConnector``; each is also a context manager that
    calls :meth:`close` on exit (see ``connectors.common.BaseConnector``).
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
