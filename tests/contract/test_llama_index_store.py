"""``m3vdb.llama_index``: a ``VectorStoreIndex`` on ``M3VectorStore``, documents inserted
through LlamaIndex's ingestion, queried in DEFAULT / SPARSE / HYBRID modes with
``MetadataFilters``, each result checked against the contract suite's exact numpy references
over the same vectors; then deletes, reads and the async twins.

Runs on every backend of the contract suite (``backends.FACTORY_MODULES``; container forms
skip without Docker), so a new backend factory is covered here too.

Troubleshooting: references are computed from ``encoder.encode`` of each node's
``get_content(MetadataMode.EMBED)``, the text LlamaIndex embeds; a mismatch in every mode at
once usually means the store encoded another text than that.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core", reason="the llama-index extra is not installed")

from conftest import BackendTarget  # noqa: E402
from contract_data import (  # noqa: E402
    assert_ranking,
    dense_scores,
    hybrid_reference,
    sparse_scores,
)
from framework_backends import fuse_weighted, tolerance  # noqa: E402
from llama_index.core import Document as LIDocument  # noqa: E402
from llama_index.core import StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from m3vdb import Hit, HybridOptions, InputError, M3Embedding, M3Encoder, matches  # noqa: E402
from m3vdb.llama_index import M3EmbedModel, M3VectorStore  # noqa: E402
from m3vdb.llama_index.filters import to_portable  # noqa: E402

TEXTS = [
    "BGE-M3 encodes text in many languages",
    "Milvus stores sparse vectors natively",
    "Qdrant fuses dense and sparse candidates",
    "the river flooded the valley in spring",
    "ColBERT reranks candidates by late interaction",
    "Elasticsearch has sparse_vector fields",
    "a recipe for bread with flour and water",
    "multilingual retrieval across many languages",
    "sparse lexical weights from one forward pass",
    "dense vectors compared by dot product",
]


def _documents() -> list[LIDocument]:
    return [
        LIDocument(
            text=t,
            doc_id=f"doc{i}",
            metadata={
                "year": 2018 + i % 5,
                "lang": ["en", "de", "fr"][i % 3],
                "tags": ["x", "y"][: i % 3],
            },
        )
        for i, t in enumerate(TEXTS)
    ]


class CountingEncoder:
    """Wraps an encoder and counts forward passes (``encode`` calls)."""

    def __init__(self, inner: M3Encoder) -> None:
        self.inner = inner
        self.calls = 0
        self.dense_dim, self.colbert_dim = inner.dense_dim, inner.colbert_dim
        self.model_path = inner.model_path

    def encode(self, texts: Any, **kwargs: Any) -> list[M3Embedding]:
        self.calls += 1
        return self.inner.encode(texts, **kwargs)


def _ingest(
    backend_target: BackendTarget, encoder: M3Encoder
) -> Iterator[tuple[VectorStoreIndex, M3VectorStore, int]]:
    """The documents ingested by ``VectorStoreIndex.from_documents`` (split into nodes,
    embedded by ``M3EmbedModel``, written by the store) in a fresh collection; yields the
    index, the store and the number of encoder passes the ingestion took."""
    enc = CountingEncoder(encoder)
    store = M3VectorStore(_open(backend_target, enc), encoder=enc)  # type: ignore[arg-type]
    index = VectorStoreIndex.from_documents(
        _documents(),
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=M3EmbedModel(enc),  # type: ignore[arg-type]
    )
    try:
        yield index, store, enc.calls
    finally:
        store.connector.drop()
        store.connector.close()


@pytest.fixture(scope="module")
def indexed(
    backend_target: BackendTarget, tiny_encoder: M3Encoder
) -> Iterator[tuple[VectorStoreIndex, M3VectorStore, int]]:
    """One ingested collection per backend for the read-only tests."""
    yield from _ingest(backend_target, tiny_encoder)


@pytest.fixture
def writable(
    backend_target: BackendTarget, tiny_encoder: M3Encoder
) -> Iterator[tuple[VectorStoreIndex, M3VectorStore, int]]:
    """A fresh ingested collection for a test that deletes and writes."""
    yield from _ingest(backend_target, tiny_encoder)


def _open(backend_target: BackendTarget, enc: Any) -> Any:
    import uuid

    from m3vdb import IndexSpec, connect

    return connect(
        backend_target.target,
        collection=f"li_{uuid.uuid4().hex[:12]}",
        encoder=enc,
        spec=IndexSpec.for_encoder(enc),
    )


def _references(store: M3VectorStore, enc: M3Encoder) -> tuple[dict[str, M3Embedding], dict]:
    nodes = store.get_nodes()
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    embs = dict(zip([n.node_id for n in nodes], enc.encode(texts)))
    return embs, {n.node_id: n.metadata for n in nodes}


def _hits(results: list[NodeWithScore]) -> list[Hit]:
    return [Hit(r.node.node_id, float(r.score or 0.0), "", r.node.metadata) for r in results]


def test_ingestion_is_one_forward_pass_per_batch(indexed: Any, tiny_encoder: M3Encoder) -> None:
    index, store, ingest_calls = indexed
    assert ingest_calls == 1  # M3EmbedModel's pass; the store reused its sparse / ColBERT outputs
    assert store.connector.count() == len(TEXTS)
    nodes = store.get_nodes()
    assert sorted(n.ref_doc_id for n in nodes) == sorted(f"doc{i}" for i in range(len(TEXTS)))
    assert {n.get_content() for n in nodes} == set(TEXTS)
    q = M3EmbedModel(tiny_encoder).get_query_embedding(TEXTS[0])
    np.testing.assert_allclose(q, tiny_encoder.encode([TEXTS[0]])[0].dense, atol=1e-6)


FILTERS = [
    None,
    MetadataFilters(filters=[MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE)]),
    MetadataFilters(
        filters=[
            MetadataFilter(key="lang", value="en"),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="tags", value="y", operator=FilterOperator.CONTAINS),
                    MetadataFilter(key="year", value=2019, operator=FilterOperator.LT),
                ],
                condition=FilterCondition.OR,
            ),
        ],
        condition=FilterCondition.OR,
    ),
]


@pytest.mark.parametrize("filters", FILTERS, ids=["nofilter", "range", "nested-or"])
def test_index_queries_equal_numpy_in_every_mode(
    indexed: Any, tiny_encoder: M3Encoder, backend_target: BackendTarget, filters: Any
) -> None:
    """DEFAULT (dense), SPARSE and HYBRID (RRF + ColBERT rerank; alpha -> weighted) through
    ``index.as_retriever``, against exact references over the filter's matches."""
    index, store, _ = indexed
    embs, metas = _references(store, tiny_encoder)
    flt = to_portable(filters)
    allowed = [i for i, m in metas.items() if matches(flt, m)]
    tol = tolerance(backend_target)
    text = "sparse vectors in many languages"
    qe = tiny_encoder.encode([text])[0]

    dense = index.as_retriever(similarity_top_k=4, filters=filters).retrieve(text)
    assert_ranking(_hits(dense), dense_scores(qe, embs, allowed), 4, tol=tol, what="dense")

    sparse = index.as_retriever(
        vector_store_query_mode="sparse", similarity_top_k=9, sparse_top_k=3, filters=filters
    ).retrieve(text)
    assert_ranking(_hits(sparse), sparse_scores(qe, embs, allowed), 3, tol=tol, what="sparse")

    for alpha, options in (
        (None, HybridOptions()),
        (0.3, HybridOptions(fusion="weighted", weights=(0.3, 0.7))),
    ):
        hybrid = index.as_retriever(
            vector_store_query_mode="hybrid", similarity_top_k=3, alpha=alpha, filters=filters
        ).retrieve(text)
        ref = hybrid_reference(
            qe, embs, allowed, 3, options, fuse_weighted(backend_target), rerank_available=True
        )
        assert_ranking(
            _hits(hybrid),
            ref.scores,
            3,
            tol=tol,
            required=ref.required,
            expected_len=ref.expected_len,
            what=f"hybrid alpha={alpha}",
        )
        assert all(matches(flt, h.node.metadata) for h in hybrid)


def test_query_top_k_options_doc_ids_and_node_ids(
    indexed: Any, tiny_encoder: M3Encoder, backend_target: BackendTarget
) -> None:
    index, store, _ = indexed
    embs, metas = _references(store, tiny_encoder)
    tol = tolerance(backend_target)
    text = "dense and sparse candidates"
    qe = tiny_encoder.encode([text])[0]
    by_ref = {n.ref_doc_id: n.node_id for n in store.get_nodes()}
    wanted_docs = ["doc1", "doc2", "doc5", "doc8"]
    allowed = [by_ref[d] for d in wanted_docs]
    query = VectorStoreQuery(
        query_str=text,
        mode=VectorStoreQueryMode.HYBRID,
        similarity_top_k=3,
        sparse_top_k=3,
        hybrid_top_k=2,
        doc_ids=wanted_docs,
    )
    result = store.query(query)
    options = HybridOptions(candidates=3)
    ref = hybrid_reference(
        qe, embs, allowed, 2, options, fuse_weighted(backend_target), rerank_available=True
    )
    hits = [Hit(i, s, "") for i, s in zip(result.ids or [], result.similarities or [])]
    assert_ranking(
        hits,
        ref.scores,
        2,
        tol=tol,
        required=ref.required,
        expected_len=ref.expected_len,
        what="hybrid_top_k + doc_ids",
    )
    node_ids = allowed[:2]
    result = store.query(VectorStoreQuery(query_str=text, similarity_top_k=5, node_ids=node_ids))
    assert sorted(result.ids or []) == sorted(node_ids)
    # a given embedding is used as is in DEFAULT mode
    result = store.query(
        VectorStoreQuery(query_embedding=list(map(float, qe.dense)), similarity_top_k=2)
    )
    assert_ranking(
        [Hit(i, s, "") for i, s in zip(result.ids or [], result.similarities or [])],
        dense_scores(qe, embs, list(embs)),
        2,
        tol=tol,
        what="embedding",
    )


@pytest.mark.parametrize(
    "operator",
    [FilterOperator.NE, FilterOperator.NIN, FilterOperator.TEXT_MATCH, FilterOperator.IS_EMPTY],
)
def test_unsupported_filters_are_errors(indexed: Any, operator: FilterOperator) -> None:
    index, _, _ = indexed
    value: Any = ["en"] if operator == FilterOperator.NIN else "en"
    filters = MetadataFilters(filters=[MetadataFilter(key="lang", value=value, operator=operator)])
    with pytest.raises(InputError, match="no m3vdb equivalent"):
        index.as_retriever(filters=filters).retrieve("languages")
    negated = MetadataFilters(
        filters=[MetadataFilter(key="lang", value="en")], condition=FilterCondition.NOT
    )
    with pytest.raises(InputError, match="no m3vdb equivalent"):
        index.as_retriever(filters=negated).retrieve("languages")


def _random_filters(rng: random.Random, depth: int = 0) -> MetadataFilters:
    items: list[Any] = []
    for _ in range(rng.randint(1, 3)):
        if depth < 1 and rng.random() < 0.3:
            items.append(_random_filters(rng, depth + 1))
            continue
        op = rng.choice(
            [
                FilterOperator.EQ,
                FilterOperator.IN,
                FilterOperator.GT,
                FilterOperator.LTE,
                FilterOperator.ANY,
                FilterOperator.CONTAINS,
                FilterOperator.ALL,
            ]
        )
        if op in (FilterOperator.GT, FilterOperator.LTE):
            items.append(
                MetadataFilter(key="year", value=rng.choice([2018, 2019.5, 2021]), operator=op)
            )
        elif op in (FilterOperator.IN, FilterOperator.ANY, FilterOperator.ALL):
            key, pool = rng.choice([("lang", ["en", "de", "fr"]), ("tags", ["x", "y", "z"])])
            items.append(MetadataFilter(key=key, value=rng.sample(pool, 2), operator=op))
        else:
            key, pool = rng.choice([("lang", ["en", "de"]), ("tags", ["x", "y"])])
            items.append(MetadataFilter(key=key, value=rng.choice(pool), operator=op))
    return MetadataFilters(
        filters=items, condition=rng.choice([FilterCondition.AND, FilterCondition.OR])
    )


def test_get_nodes_with_random_filters_equals_matches(indexed: Any) -> None:
    """25 random nested filters: ``get_nodes`` returns exactly the nodes ``matches`` accepts."""
    _, store, _ = indexed
    metas = {n.node_id: n.metadata for n in store.get_nodes()}
    rng = random.Random(7)
    for _ in range(25):
        filters = _random_filters(rng)
        want = sorted(i for i, m in metas.items() if matches(to_portable(filters), m))
        got = sorted(n.node_id for n in store.get_nodes(filters=filters))
        assert got == want, filters


def test_deletes_reads_and_async_twins(writable: Any) -> None:
    index, store, _ = writable
    by_ref = {n.ref_doc_id: n.node_id for n in store.get_nodes()}
    index.delete_ref_doc("doc0")
    assert store.connector.count() == len(TEXTS) - 1
    assert store.get_nodes(node_ids=[by_ref["doc0"], by_ref["doc1"]])[0].node_id == by_ref["doc1"]
    store.delete_nodes(node_ids=[by_ref["doc1"]])
    only_de = MetadataFilters(filters=[MetadataFilter(key="lang", value="de")])
    store.delete_nodes(node_ids=[by_ref["doc4"], by_ref["doc6"]], filters=only_de)
    left = {n.ref_doc_id for n in store.get_nodes()}
    assert "doc4" not in left and "doc6" in left  # doc4 is "de", doc6 is "en"
    asyncio.run(store.adelete("doc2"))
    assert "doc2" not in {n.ref_doc_id for n in asyncio.run(store.aget_nodes())}
    result = asyncio.run(store.aquery(VectorStoreQuery(query_str="bread", similarity_top_k=2)))
    assert len(result.ids or []) == 2
    asyncio.run(store.adelete_nodes(filters=only_de))
    assert all(n.metadata["lang"] != "de" for n in store.get_nodes())
    asyncio.run(store.async_add([TextNode(text="a new node", id_="n-new", metadata={"year": 1})]))
    assert store.get_nodes(node_ids=["n-new"])[0].get_content() == "a new node"
    asyncio.run(store.aclear())
    assert store.connector.count() == 0 and store.get_nodes() == []


def test_another_embedding_model_gives_a_dense_only_store(backend_target: BackendTarget) -> None:
    import uuid

    embed = MockEmbedding(embed_dim=8)
    store = M3VectorStore.connect(
        backend_target.target, collection=f"li_{uuid.uuid4().hex[:12]}", embed_dim=8
    )
    try:
        spec = store.connector.spec
        assert (spec.dense, spec.sparse, spec.colbert, spec.dense_dim) == (True, False, False, 8)
        assert store.is_embedding_query
        index = VectorStoreIndex.from_documents(
            _documents()[:3],
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=embed,
        )
        assert len(index.as_retriever(similarity_top_k=2).retrieve("x")) == 2
        with pytest.raises(InputError, match="needs BGE-M3"):
            index.as_retriever(vector_store_query_mode="hybrid").retrieve("x")
    finally:
        store.connector.drop()
        store.close()
