"""What the two Qdrant engines share: one layout (``m3vdb.schemas.qdrant``: named vectors,
payload, point ids, filters) and one query plan, over two APIs.

:class:`QdrantLayoutEngine` writes, deletes, reads, scans and searches in terms of a few
native calls that each engine supplies (``qdrant_client`` in :mod:`.client`, ``qdrant_edge``
in :mod:`.edge`). Every search is ONE native query::

    query(
        prefetch=[Prefetch(                       # only when reranking by ColBERT
            prefetch=[Prefetch(dense, filter, limit=C), Prefetch(sparse, filter, limit=C)],
            query=Rrf(k=rrf_k + 1) | Formula(w_d*$score[0] + w_s*$score[1]),
            filter, limit=C,
        )],
        query=colbert_rows, using="colbert",      # MaxSim over the fused candidates
        filter=filter, limit=k,
    )

``mode="colbert"`` on a collection with ``IndexSpec.colbert_fde`` is ``query(prefetch=
[Prefetch(fde_query, using="colbert_fde", filter, limit=C)], query=colbert_rows,
using="colbert", filter, limit=k)``: MUVERA candidates reranked by exact MaxSim.

Scores: dense = dot (or cosine); sparse = sum of q_w * p_w over shared token ids; colbert =
MaxSim SUM over query rows (FlagEmbedding's colbert score is this divided by the number of
query rows); hybrid = RRF ``Rrf(k=rrf_k + 1)`` (Qdrant ranks from 0, so k + 1 gives
1 / (rrf_k + rank) with the 1-based rank, the formula of Milvus and Elasticsearch) or the
formula ``w_d * $score[0] + w_s * $score[1]`` (0 for a candidate missing from one list: the
raw weighted sum of BGE-M3's own ``compute_score``), then with ``rerank`` the MaxSim of the
fused candidates.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from m3vdb.connectors.engine import Engine
from m3vdb.connectors.plan import SearchPlan
from m3vdb.schemas import qdrant as qschema
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.filters import Filter

#: The key of m3vdb's record in a collection's metadata (see ``engine.record_json``).
RECORD_KEY = "m3vdb"


class QdrantLayoutEngine(Engine):
    """An Engine over the Qdrant layout; a subclass supplies the native calls below (and the
    database-level verbs, ``count``, ``drop`` and the error table of ``Engine``)."""

    # -- native calls a subclass supplies ---------------------------------------------

    @abstractmethod
    def _native_filter(self, flt: Filter | None) -> Any:
        """The engine's filter object for a parsed filter (None for none)."""

    @abstractmethod
    def _point(self, doc: Document, emb: M3Embedding, fde: np.ndarray | None = None) -> Any:
        """The engine's point of a validated pair, with its MUVERA encoding when the spec
        stores one (checks Qdrant's limits first)."""

    @abstractmethod
    def _upsert(self, points: list[Any]) -> None:
        """Writes the points, waiting until they are visible."""

    @abstractmethod
    def _delete_points(self, point_ids: list[str]) -> None:
        """Deletes these point ids."""

    @abstractmethod
    def _delete_matching(self, native_filter: Any) -> None:
        """Deletes every point matching the native filter."""

    @abstractmethod
    def _retrieve(self, point_ids: list[str]) -> list[Any]:
        """The records (with payload) of these point ids."""

    @abstractmethod
    def _scroll(
        self, native_filter: Any, limit: int, offset: Any, *, with_vectors: bool = False
    ) -> tuple[list[Any], Any]:
        """One page of records (with payload, and their vectors when asked) and the next
        offset (None at the end)."""

    @abstractmethod
    def _vector_query(self, vector: Any, using: str) -> Any:
        """A nearest-neighbour query of ``vector`` (a list, rows, or a sparse vector) against
        the named vector ``using``, as a prefetch or a main query takes it."""

    @abstractmethod
    def _sparse_vector(self, weights: Mapping[int, float]) -> Any:
        """The engine's sparse vector of token id -> weight."""

    @abstractmethod
    def _fusion(self, plan: SearchPlan, weights: list[float]) -> Any:
        """The fusion query of the dense and sparse stages (RRF or the weighted formula)."""

    @abstractmethod
    def _prefetch(self, query: Any, *, limit: int, native_filter: Any, stages: Any = None) -> Any:
        """One prefetch stage."""

    @abstractmethod
    def _query(
        self,
        query: Any,
        *,
        limit: int,
        native_filter: Any,
        stages: Any = None,
        colbert: bool = False,
    ) -> list[Any]:
        """Runs one query; returns its scored points (with payload). ``colbert``: the query is
        over the ColBERT multivector (a quantised one is rescored with its originals)."""

    # -- Engine primitives, written once ----------------------------------------------

    def write(
        self, pairs: Sequence[tuple[Document, M3Embedding]], *, fde: np.ndarray | None = None
    ) -> None:
        """One upsert of the batch's points (built, and so checked, first)."""
        self._upsert(
            [
                self._point(doc, emb, None if fde is None else fde[i])
                for i, (doc, emb) in enumerate(pairs)
            ]
        )

    def delete_ids(self, ids: Sequence[str]) -> None:
        self._delete_points([qschema.point_id(i) for i in ids])

    def delete_where(self, flt: Filter) -> None:
        self._delete_matching(self._native_filter(flt))

    def get(self, ids: Sequence[str]) -> list[Document]:
        records = self._retrieve([qschema.point_id(i) for i in ids])
        found = {}
        for record in records:
            doc = qschema.document_from_payload(record.payload, self._spec)
            found[doc.id] = doc
        return [found[i] for i in ids if i in found]

    def scan(self, flt: Filter | None, *, batch_size: int) -> Iterator[Document]:
        native_filter = self._native_filter(flt)
        offset: Any = None
        while True:
            records, offset = self._scroll(native_filter, batch_size, offset)
            for record in records:
                yield qschema.document_from_payload(record.payload, self._spec)
            if offset is None:
                return

    def scan_embeddings(
        self, flt: Filter | None, *, batch_size: int
    ) -> Iterator[list[tuple[Document, M3Embedding]]]:
        """One batch per scroll page, each record read with its named vectors."""
        native_filter = self._native_filter(flt)
        offset: Any = None
        while True:
            records, offset = self._scroll(native_filter, batch_size, offset, with_vectors=True)
            if records:
                yield [
                    (
                        qschema.document_from_payload(r.payload, self._spec),
                        qschema.embedding_from_vectors(_vectors(r), self._spec),
                    )
                    for r in records
                ]
            if offset is None:
                return

    def run(self, plan: SearchPlan) -> list[Hit]:
        """ONE native query (see the module docstring); the filter applies to every stage."""
        spec = self._spec
        native_filter = self._native_filter(plan.filter)
        queries = self._queries(plan)
        if plan.mode == "colbert" and "fde" in queries:
            # MUVERA: candidates by the FDE vector, reranked by exact MaxSim, one request
            first = self._prefetch(
                queries["fde"], limit=plan.candidates, native_filter=native_filter
            )
            points = self._query(
                queries["colbert"],
                limit=plan.k,
                native_filter=native_filter,
                stages=[first],
                colbert=True,
            )
            signal: str = "colbert"
        elif plan.mode != "hybrid":
            points = self._query(
                queries[plan.mode],
                limit=plan.k,
                native_filter=native_filter,
                colbert=plan.mode == "colbert",
            )
            signal = plan.mode
        else:
            stages, weights = [], []
            for name, weight in (("dense", plan.weights[0]), ("sparse", plan.weights[1])):
                if name in queries:
                    stages.append(
                        self._prefetch(
                            queries[name], limit=plan.candidates, native_filter=native_filter
                        )
                    )
                    weights.append(float(weight))
            fusion = self._fusion(plan, weights)
            if plan.rerank:
                fused = self._prefetch(
                    fusion, limit=plan.candidates, native_filter=native_filter, stages=stages
                )
                points = self._query(
                    queries["colbert"],
                    limit=plan.k,
                    native_filter=native_filter,
                    stages=[fused],
                    colbert=True,
                )
                signal = "colbert"
            else:
                points = self._query(
                    fusion, limit=plan.k, native_filter=native_filter, stages=stages
                )
                signal = "fusion"
        hits = []
        for point in points:
            doc = qschema.document_from_payload(point.payload, spec)
            score = float(point.score)
            hits.append(Hit(doc.id, score, doc.text, doc.metadata, {signal: score}))
        return hits

    def _queries(self, plan: SearchPlan) -> dict[str, Any]:
        """signal -> the plan's query vector as a native query; "sparse" is left out when no
        weight is > 0."""
        fields = self._spec.fields
        out: dict[str, Any] = {}
        if plan.dense is not None:
            out["dense"] = self._vector_query(plan.dense.tolist(), fields.dense)
        if plan.sparse:
            out["sparse"] = self._vector_query(self._sparse_vector(plan.sparse), fields.sparse)
        if plan.colbert is not None:
            out["colbert"] = self._vector_query(plan.colbert.tolist(), fields.colbert)
        if plan.fde is not None:
            out["fde"] = self._vector_query(plan.fde.tolist(), fields.colbert_fde)
        return out


def _vectors(record: Any) -> Any:
    """A record's named vectors (qdrant-client: ``vector``; Qdrant edge: ``vector`` too, or
    ``vectors`` on some versions)."""
    vectors = getattr(record, "vector", None)
    return vectors if vectors is not None else getattr(record, "vectors", None)
