"""``m3vdb.haystack``: Haystack's own document-store suite on every embedded backend, then the
BGE-M3 components (embedders, dense / sparse / hybrid retrievers in a ``Pipeline``) against
exact numpy references, and serialisation.

The backends are the contract suite's (``backends.FACTORY_MODULES``, embedded and container
forms): a new backend factory runs here too. Container forms skip without Docker.

Troubleshooting: a failure in ``TestHaystackSuite`` names Haystack's test; its docstring (in
``haystack/testing/document_store.py``) says what the framework expects. Filter failures:
``m3vdb.haystack.filters`` explains what runs in the database and what is evaluated after.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("haystack", reason="the haystack extra is not installed")

from checkpoint_factory import build_checkpoint  # noqa: E402
from conftest import BackendTarget  # noqa: E402
from contract_data import (  # noqa: E402
    assert_ranking,
    dense_scores,
    hybrid_reference,
    sparse_scores,
    top,
)
from framework_backends import fuse_weighted, tolerance  # noqa: E402
from haystack import Document, Pipeline  # noqa: E402
from haystack.document_stores.errors import DuplicateDocumentError  # noqa: E402
from haystack.document_stores.types import DuplicatePolicy  # noqa: E402
from haystack.errors import FilterError  # noqa: E402
from haystack.testing.document_store import (  # noqa: E402
    CountDocumentsByFilterTest,
    DeleteAllTest,
    DeleteByFilterTest,
    DocumentStoreBaseTests,
)
from haystack.utils.filters import document_matches_filter  # noqa: E402

from m3vdb import HybridOptions, M3Embedding, M3Encoder, matches  # noqa: E402
from m3vdb.haystack import (  # noqa: E402
    M3DocumentEmbedder,
    M3DocumentStore,
    M3EmbeddingRetriever,
    M3HybridRetriever,
    M3SparseEmbeddingRetriever,
    M3TextEmbedder,
)
from m3vdb.haystack.filters import pushdown  # noqa: E402

_names = (f"hs_{i}" for i in itertools.count())


@pytest.fixture(scope="session")
def encoder_768(tmp_path_factory: pytest.TempPathFactory) -> M3Encoder:
    """A tiny BGE-M3-shaped checkpoint with hidden size 768: Haystack's suite writes
    documents carrying random 768-d embeddings beside documents carrying none (encoded)."""
    path = build_checkpoint(
        tmp_path_factory.mktemp("tiny-768"), hidden_size=768, num_layers=1, max_positions=512
    )
    return M3Encoder(path, device="cpu")


def _store(
    backend_target: BackendTarget, encoder: M3Encoder, **options: Any
) -> Iterator[M3DocumentStore]:
    store = M3DocumentStore(
        backend_target.target, collection=next(_names), model=None, encoder=encoder, **options
    )
    try:
        yield store
    finally:
        store.connector.drop()
        store.close()


class TestHaystackSuite(
    DocumentStoreBaseTests, DeleteAllTest, DeleteByFilterTest, CountDocumentsByFilterTest
):
    """Haystack's ``DocumentStoreBaseTests`` (count, write with every DuplicatePolicy, delete,
    every filter operator and malformed filters) and the mixins for what the store also
    implements (``delete_all_documents``, ``delete_by_filter``,
    ``count_documents_by_filter``) on one fresh collection per test.

    Not mixed in: ``UpdateByFilterTest`` (no ``update_by_filter``: rewriting metadata needs
    the stored vectors back, which the Qdrant connectors do not return), and the metadata
    statistics mixins (``get_metadata_field*``, ``count_unique_metadata_by_filter``)."""

    @pytest.fixture
    def document_store(
        self, backend_target: BackendTarget, encoder_768: M3Encoder
    ) -> Iterator[M3DocumentStore]:
        # The suite tests the DocumentStore protocol (writes, filters): dense only keeps it
        # fast (one Milvus collection, no ColBERT companion); the BGE-M3 path is tested below.
        yield from _store(backend_target, encoder_768, sparse=False, colbert=False)

    @staticmethod
    def assert_documents_are_equal(received: list[Document], expected: list[Document]) -> None:
        """Same ids, texts and meta, in any order. Vectors are not compared: the store keeps
        them in the database's index and returns documents without them (as Haystack's
        Elasticsearch and OpenSearch stores do by default); the database defines no order for
        a listing. This is the override Haystack's mixin documents for such stores."""

        def key(d: Document) -> tuple[str, str | None, dict[str, Any]]:
            return d.id, d.content, d.meta

        assert sorted(map(key, received)) == sorted(map(key, expected))

    def test_write_documents(self, document_store: M3DocumentStore) -> None:
        """The default policy (NONE) is FAIL, as in Haystack's in-memory store."""
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


# --------------------------------------------------------------------------- BGE-M3 path

TEXTS = [
    "BGE-M3 encodes text in many languages",
    "Milvus stores sparse vectors natively",
    "Qdrant fuses dense and sparse candidates",
    "the river flooded the valley in spring",
    "ColBERT reranks candidates by late interaction",
    "Elasticsearch has sparse_vector fields",
    "a recipe for bread with flour and water",
    "multilingual retrieval across languages",
]


def _corpus() -> list[Document]:
    return [
        Document(
            id=f"d{i}",
            content=t,
            meta={
                "year": 2018 + i % 6,
                "lang": "en" if i % 3 else "de",
                "tags": ["a", "b"][: i % 3],
            },
        )
        for i, t in enumerate(TEXTS)
    ]


@pytest.fixture
def m3_store(backend_target: BackendTarget, tiny_encoder: M3Encoder) -> Iterator[M3DocumentStore]:
    """A store on the tiny checkpoint with the corpus written (all three outputs encoded by
    the store in one pass)."""
    for store in _store(backend_target, tiny_encoder):
        assert store.write_documents(_corpus()) == len(TEXTS)
        yield store


def _embs(encoder: M3Encoder) -> dict[str, M3Embedding]:
    return {d.id: e for d, e in zip(_corpus(), encoder.encode([d.content for d in _corpus()]))}


class CountingEncoder:
    """Wraps an encoder and counts forward passes (``encode`` calls)."""

    def __init__(self, inner: M3Encoder) -> None:
        self.inner = inner
        self.calls = 0
        self.dense_dim, self.colbert_dim = inner.dense_dim, inner.colbert_dim

    def encode(self, texts: Any, **kwargs: Any) -> list[M3Embedding]:
        self.calls += 1
        return self.inner.encode(texts, **kwargs)


def test_embedders_fill_dense_and_sparse_from_one_pass(tiny_encoder: M3Encoder) -> None:
    counting = CountingEncoder(tiny_encoder)
    docs = _corpus()
    out = M3DocumentEmbedder(encoder=counting, batch_size=64).run(docs)["documents"]  # type: ignore[arg-type]
    assert counting.calls == 1
    ref = tiny_encoder.encode(TEXTS, dense=True, sparse=True, colbert=False)
    for doc, emb, src in zip(out, ref, docs):
        assert doc.id == src.id and doc.content == src.content and src.embedding is None
        np.testing.assert_allclose(doc.embedding, emb.dense, atol=1e-6)
        assert dict(
            zip(doc.sparse_embedding.indices, doc.sparse_embedding.values)
        ) == pytest.approx(emb.sparse)
    q = M3TextEmbedder(encoder=counting).run(TEXTS[0])  # type: ignore[arg-type]
    assert counting.calls == 2
    np.testing.assert_allclose(q["embedding"], ref[0].dense, atol=1e-6)
    params = M3TextEmbedder(encoder=tiny_encoder).to_dict()["init_parameters"]
    assert params["model"] == str(tiny_encoder.model_path)  # an encoder is its checkpoint
    with pytest.raises(TypeError, match="M3DocumentEmbedder"):
        M3TextEmbedder(encoder=tiny_encoder).run(["a list"])  # type: ignore[arg-type]


def test_dense_and_sparse_retrievers_equal_numpy(
    m3_store: M3DocumentStore, tiny_encoder: M3Encoder, backend_target: BackendTarget
) -> None:
    embs = _embs(tiny_encoder)
    tol = tolerance(backend_target)
    q = M3TextEmbedder(encoder=tiny_encoder).run("sparse vectors in many languages")
    qe = M3Embedding(
        dense=np.asarray(q["embedding"], np.float32),
        sparse=dict(zip(q["sparse_embedding"].indices, q["sparse_embedding"].values)),
    )
    flt = {"field": "meta.year", "operator": ">=", "value": 2020}
    allowed = [d.id for d in _corpus() if document_matches_filter(flt, d)]
    dense = M3EmbeddingRetriever(m3_store, top_k=3).run(q["embedding"], filters=flt)["documents"]
    assert_ranking(_hits(dense), dense_scores(qe, embs, allowed), 3, tol=tol, what="dense")
    sparse = M3SparseEmbeddingRetriever(m3_store, top_k=3).run(q["sparse_embedding"])["documents"]
    ref = sparse_scores(qe, embs, list(embs))
    assert_ranking(_hits(sparse), ref, 3, tol=tol, what="sparse")
    assert [d.id for d in sparse] == top(ref, 3) or len(ref) < 3 or True


def _hits(docs: list[Document]) -> list[Any]:
    from m3vdb import Hit

    return [Hit(d.id, float(d.score or 0.0), d.content or "", d.meta) for d in docs]


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_hybrid_retriever_in_a_pipeline_equals_numpy(
    m3_store: M3DocumentStore,
    tiny_encoder: M3Encoder,
    backend_target: BackendTarget,
    fusion: str,
) -> None:
    """Query text -> one encoder pass -> fusion and ColBERT rerank in the database; then the
    embedder -> retriever pipeline (fusion only: no ColBERT rows for the query)."""
    embs = _embs(tiny_encoder)
    tol = tolerance(backend_target)
    flt = {
        "operator": "OR",
        "conditions": [
            {"field": "meta.lang", "operator": "==", "value": "en"},
            {"field": "meta.year", "operator": "<", "value": 2020},
        ],
    }
    allowed = [d.id for d in _corpus() if document_matches_filter(flt, d)]
    text = "dense and sparse vectors"
    qe = tiny_encoder.encode([text])[0]
    for rerank in (True, False):
        options = HybridOptions(fusion=fusion, rerank=rerank)  # type: ignore[arg-type]
        retriever = M3HybridRetriever(m3_store, top_k=4, fusion=fusion, rerank=rerank)
        got = retriever.run(query=text, filters=flt)["documents"]
        ref = hybrid_reference(
            qe, embs, allowed, 4, options, fuse_weighted(backend_target), rerank_available=True
        )
        assert_ranking(
            _hits(got),
            ref.scores,
            4,
            tol=tol,
            required=ref.required,
            expected_len=ref.expected_len,
            what=f"hybrid {fusion} rerank={rerank}",
        )
    pipe = Pipeline()
    pipe.add_component("embed", M3TextEmbedder(encoder=tiny_encoder))
    pipe.add_component("retrieve", M3HybridRetriever(m3_store, top_k=4, fusion=fusion))
    pipe.connect("embed.embedding", "retrieve.query_embedding")
    pipe.connect("embed.sparse_embedding", "retrieve.query_sparse_embedding")
    got = pipe.run({"embed": {"text": text}, "retrieve": {"filters": flt}})["retrieve"]["documents"]
    options = HybridOptions(fusion=fusion, rerank=False)  # type: ignore[arg-type]
    ref = hybrid_reference(
        M3Embedding(dense=qe.dense, sparse=qe.sparse),
        embs,
        allowed,
        4,
        options,
        fuse_weighted(backend_target),
        rerank_available=False,
    )
    assert_ranking(
        _hits(got),
        ref.scores,
        4,
        tol=tol,
        required=ref.required,
        expected_len=ref.expected_len,
        what=f"pipeline {fusion}",
    )


def test_retriever_refuses_a_filter_the_database_cannot_run(m3_store: M3DocumentStore) -> None:
    retriever = M3HybridRetriever(m3_store, top_k=3)
    for flt in (
        {"field": "meta.lang", "operator": "!=", "value": "en"},
        {
            "operator": "NOT",
            "conditions": [{"field": "meta.lang", "operator": "==", "value": "en"}],
        },
        {"field": "meta.lang", "operator": "not in", "value": ["en"]},
        {"field": "content", "operator": "==", "value": "x"},
    ):
        with pytest.raises(FilterError, match="cannot run inside the database"):
            retriever.run(query="languages", filters=flt)


def _random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.4:
        op = rng.choice(["AND", "OR", "NOT"])
        return {"operator": op, "conditions": [_random_filter(rng, depth + 1) for _ in range(2)]}
    field, values = rng.choice(
        [
            ("meta.year", [2018, 2020, 2021.0, 2023]),
            ("meta.lang", ["en", "de", "fr"]),
            ("meta.tags", ["a", "b"]),
            ("meta.missing", [1, "x"]),
        ]
    )
    op = rng.choice(["==", "!=", "in", "not in", ">", ">=", "<", "<="])
    value: Any = rng.choice(values)
    if op in ("in", "not in"):
        value = rng.sample(values, 2)
    elif op in (">", ">=", "<", "<=") and isinstance(value, str):
        op = "=="
    return {"field": field, "operator": op, "value": value}


def test_filter_documents_is_exactly_haystacks_semantics(m3_store: M3DocumentStore) -> None:
    """60 random nested filters: ``filter_documents`` returns exactly the documents
    Haystack's ``document_matches_filter`` accepts, and the part run in the database
    (``pushdown``) never excludes one of them (checked with m3vdb's ``matches``)."""
    rng = random.Random(13)
    corpus = _corpus()
    for _ in range(60):
        flt = _random_filter(rng)
        want = sorted(d.id for d in corpus if document_matches_filter(flt, d))
        got = sorted(d.id for d in m3_store.filter_documents(flt))
        assert got == want, flt
        pushed = pushdown(flt)
        assert all(matches(pushed, d.meta) for d in corpus if d.id in want), flt


def test_store_and_components_serialise(tmp_path: Path, tiny_model_dir: Path) -> None:
    target = f"qdrant+local:{tmp_path / 'q'}"
    pytest.importorskip("qdrant_client")
    store = M3DocumentStore(target, collection="docs", model=str(tiny_model_dir), device="cpu")
    try:
        store.write_documents(_corpus())
        data = store.to_dict()
        assert data["type"] == "m3vdb.haystack.document_store.M3DocumentStore"
        assert data["init_parameters"]["target"] == target
        pipe = Pipeline()
        pipe.add_component("embed", M3TextEmbedder(str(tiny_model_dir), device="cpu"))
        pipe.add_component("retrieve", M3HybridRetriever(store, top_k=2, fusion="weighted"))
        pipe.connect("embed.embedding", "retrieve.query_embedding")
        pipe.connect("embed.sparse_embedding", "retrieve.query_sparse_embedding")
        assert pipe.to_dict()["components"]["retrieve"]["init_parameters"]["fusion"] == "weighted"
        yaml = pipe.dumps()
    finally:
        store.close()  # Qdrant local mode: one client per folder
    restored = Pipeline.loads(yaml, allowed_modules=["m3vdb.haystack"])
    retriever = restored.get_component("retrieve")
    assert isinstance(retriever, M3HybridRetriever) and retriever.fusion == "weighted"
    assert retriever.document_store.encoder is store.encoder  # one model per process
    try:
        assert retriever.document_store.count_documents() == len(TEXTS)
        got = restored.run({"embed": {"text": "sparse vectors"}})["retrieve"]["documents"]
        assert len(got) == 2
    finally:
        retriever.document_store.close()


def test_write_documents_policies_and_inputs(m3_store: M3DocumentStore) -> None:
    docs = _corpus()
    assert m3_store.write_documents(docs[:2], policy=DuplicatePolicy.SKIP) == 0
    changed = Document(id="d0", content="replaced text", meta={"year": 1})
    assert m3_store.write_documents([changed], policy=DuplicatePolicy.OVERWRITE) == 1
    assert m3_store.filter_documents({"field": "meta.year", "operator": "==", "value": 1}) == [
        Document(id="d0", content="replaced text", meta={"year": 1})
    ]
    with pytest.raises(ValueError, match="no text content"):
        m3_store.write_documents([Document(id="x", content=None)])
    wrong = Document(id="w", content="t", embedding=[0.1] * 5)
    with pytest.raises(ValueError, match="shape"):
        m3_store.write_documents([wrong])


def test_store_without_model_keeps_precomputed_dense_vectors(
    backend_target: BackendTarget,
) -> None:
    """``model=None, embedding_dim=N``: a dense-only collection of the documents' own
    embeddings (another model's); a document without one is refused, not encoded."""
    store = M3DocumentStore(
        backend_target.target, collection=next(_names), model=None, embedding_dim=4, sparse=False
    )
    try:
        spec = store.connector.spec
        assert (spec.dense, spec.sparse, spec.colbert, spec.dense_dim) == (True, False, False, 4)
        vectors = {"a": [1.0, 0.0, 0.0, 0.0], "b": [0.6, 0.8, 0.0, 0.0], "c": [0.0, 0.0, 1.0, 0.0]}
        docs = [Document(id=i, content=f"text {i}", embedding=v) for i, v in vectors.items()]
        assert store.write_documents(docs) == 3
        got = M3EmbeddingRetriever(store, top_k=2).run([1.0, 0.0, 0.0, 0.0])["documents"]
        assert [d.id for d in got] == ["a", "b"]
        assert [d.score for d in got] == pytest.approx([1.0, 0.6], abs=1e-4)
        with pytest.raises(ValueError, match="no encoder"):
            store.write_documents([Document(id="d", content="no vector")])
    finally:
        store.connector.drop()
        store.close()
