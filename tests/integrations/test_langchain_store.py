"""``M3VectorStore``: LangChain's own standard suite on every embedded backend, then the
BGE-M3 path (hybrid, filters, retriever options) against the tiny encoder."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
pytest.importorskip("langchain_tests", reason="langchain-tests (the test extra) is not installed")

from langchain_core.documents import Document as LCDocument  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from langchain_tests.integration_tests import VectorStoreIntegrationTests  # noqa: E402

from m3vdb import InputError, M3Encoder  # noqa: E402
from m3vdb.langchain import M3Embeddings, M3VectorStore  # noqa: E402


def _standard(cls: type) -> type:
    """Marks a standard-suite class for pytest-asyncio: its async tests carry no mark
    (LangChain's packages run pytest-asyncio in auto mode; this project keeps strict mode).
    The mark also lands on the sync tests, where pytest-asyncio warns that it is unused."""
    cls = pytest.mark.asyncio(loop_scope="function")(cls)
    return pytest.mark.filterwarnings(
        "ignore:The test <Function .* is marked with '@pytest.mark.asyncio'"
    )(cls)


_names = (f"lc_{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def milvus_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Milvus Lite file for the module (starting Lite costs seconds); a fresh collection
    per test keeps tests apart."""
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path_factory.mktemp("lc-milvus") / "lc.db"))
    yield client
    client.close()


@pytest.fixture(params=["milvus-lite", "qdrant-memory"])
def target(request: pytest.FixtureRequest) -> Any:
    """An embedded engine: the shared Milvus Lite client, or a fresh Qdrant in memory."""
    if request.param == "milvus-lite":
        return request.getfixturevalue("milvus_client")
    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
    return "qdrant+memory://"


def _empty_store(target: Any, embedding: Any) -> Iterator[M3VectorStore]:
    store = M3VectorStore.connect(target, collection=next(_names), embedding=embedding)
    try:
        yield store
    finally:
        store.connector.drop()
        store.close()


@_standard
class TestMilvusLiteStandard(VectorStoreIntegrationTests):
    """LangChain's standard vector-store suite on Milvus Lite (dense-only collection)."""

    @pytest.fixture()
    def vectorstore(self, milvus_client: Any) -> Iterator[VectorStore]:
        yield from _empty_store(milvus_client, self.get_embeddings())


@_standard
class TestQdrantMemoryStandard(VectorStoreIntegrationTests):
    """LangChain's standard vector-store suite on Qdrant's in-memory engine."""

    @pytest.fixture()
    def vectorstore(self) -> Iterator[VectorStore]:
        pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
        yield from _empty_store("qdrant+memory://", self.get_embeddings())


# --------------------------------------------------------------------------- BGE-M3 path

TEXTS = [
    "BGE-M3 encodes text into dense, sparse and multi-vector representations.",
    "Milvus stores sparse vectors in an inverted index.",
    "Qdrant fuses dense and sparse candidates with reciprocal rank fusion.",
    "La tour Eiffel se trouve à Paris.",
    "東京は日本の首都です。",
]
LANGS = ["en", "en", "en", "fr", "ja"]


@pytest.fixture()
def m3_store(target: Any, tiny_encoder: M3Encoder) -> Iterator[M3VectorStore]:
    """A store on the tiny encoder holding TEXTS with ids t0..t4 and a ``lang`` metadata."""
    for store in _empty_store(target, tiny_encoder):
        store.add_texts(TEXTS, [{"lang": lang, "n": i} for i, lang in enumerate(LANGS)], ids=_ids())
        yield store


def _ids() -> list[str]:
    return [f"t{i}" for i in range(len(TEXTS))]


def test_m3_store_stores_all_three_outputs(m3_store: M3VectorStore) -> None:
    spec = m3_store.connector.spec
    assert (spec.dense, spec.sparse, spec.colbert) == (True, True, True)
    assert m3_store.connector.count() == len(TEXTS)


def test_hybrid_search_ranks_the_identical_text_first(m3_store: M3VectorStore) -> None:
    # With ColBERT rerank, a text's MaxSim against itself is the number of its rows: the
    # largest any document can reach, whatever the (random) weights.
    for i, text in enumerate(TEXTS):
        docs = m3_store.similarity_search(text, k=3)
        assert docs[0] == LCDocument(
            page_content=text, metadata={"lang": LANGS[i], "n": i}, id=f"t{i}"
        )


def test_dense_scores_equal_the_encoder_dot_products(
    m3_store: M3VectorStore, tiny_encoder: M3Encoder
) -> None:
    query = "dense and sparse fusion"
    got = m3_store.similarity_search_with_score(query, k=len(TEXTS), mode="dense")
    q = tiny_encoder.encode([query], sparse=False, colbert=False)[0].dense
    docs = tiny_encoder.encode(TEXTS, sparse=False, colbert=False)
    expected = sorted(
        ((f"t{i}", float(np.dot(q, d.dense))) for i, d in enumerate(docs)),
        key=lambda p: -p[1],
    )
    assert [doc.id for doc, _ in got] == [i for i, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-4)


@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert", "hybrid"])
def test_retriever_passes_mode_and_filter(m3_store: M3VectorStore, mode: str) -> None:
    retriever = m3_store.as_retriever(
        search_kwargs={"k": 5, "mode": mode, "filter": {"lang": "en"}}
    )
    docs = retriever.invoke(TEXTS[1])
    assert {d.id for d in docs} <= {"t0", "t1", "t2"}
    assert docs[0].id == "t1"
    direct = m3_store.similarity_search(TEXTS[1], k=5, mode=mode, filter={"lang": "en"})  # type: ignore[arg-type]
    assert [d.id for d in docs] == [d.id for d in direct]


def test_filter_operators_reach_the_database(m3_store: M3VectorStore) -> None:
    docs = m3_store.similarity_search(TEXTS[0], k=5, filter={"n": {"gte": 3}})
    assert sorted(d.id for d in docs) == ["t3", "t4"]
    docs = m3_store.similarity_search(TEXTS[0], k=5, filter={"$or": [{"lang": "fr"}, {"n": 0}]})
    assert sorted(d.id for d in docs) == ["t0", "t3"]


def test_unknown_search_option_is_an_error_not_ignored(m3_store: M3VectorStore) -> None:
    retriever = m3_store.as_retriever(search_kwargs={"k": 2, "filtre": {"lang": "en"}})
    with pytest.raises(TypeError, match="filtre"):
        retriever.invoke("anything")
    with pytest.raises(InputError, match="mode must be one of"):
        m3_store.similarity_search("anything", mode="bm25")  # type: ignore[arg-type]


def test_get_by_ids_keeps_the_order_given_and_skips_missing(m3_store: M3VectorStore) -> None:
    docs = m3_store.get_by_ids(["t3", "missing", "t0"])
    assert [d.id for d in docs] == ["t3", "t0"]
    assert docs[0].page_content == TEXTS[3]


def test_delete_needs_ids(m3_store: M3VectorStore) -> None:
    with pytest.raises(InputError, match="drop"):
        m3_store.delete(None)
    assert m3_store.delete(["t0", "never-stored"]) is True
    assert m3_store.connector.count() == len(TEXTS) - 1


def test_async_variants(m3_store: M3VectorStore) -> None:
    async def run() -> tuple[list[str], list[LCDocument]]:
        ids = await m3_store.aadd_texts(["Ein neuer Satz auf Deutsch."], [{"lang": "de"}])
        found = await m3_store.asimilarity_search(
            "Ein neuer Satz auf Deutsch.", k=1, filter={"lang": "de"}
        )
        await m3_store.adelete(ids)
        return ids, found

    ids, found = asyncio.run(run())
    assert [d.id for d in found] == ids
    assert m3_store.get_by_ids(ids) == []


def test_embeddings_adapter_is_the_dense_output(
    m3_store: M3VectorStore, tiny_encoder: M3Encoder
) -> None:
    emb = m3_store.embeddings
    assert isinstance(emb, M3Embeddings)
    expected = tiny_encoder.encode([TEXTS[0]], sparse=False, colbert=False)[0].dense
    np.testing.assert_allclose(emb.embed_query(TEXTS[0]), expected, atol=1e-6)
    assert len(emb.embed_documents(TEXTS)) == len(TEXTS)


def test_from_texts_with_m3_embeddings_and_generated_ids(
    tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    metadatas = [{"lang": "en"}, {"lang": "fr"}]
    store = M3VectorStore.from_texts(
        TEXTS[:2], M3Embeddings(tiny_encoder), metadatas, target=str(tmp_path / "ft.db")
    )
    try:
        docs = store.similarity_search(TEXTS[1], k=2)
        assert [d.page_content for d in docs] == [TEXTS[1], TEXTS[0]]
        assert all(isinstance(d.id, str) and len(d.id) == 32 for d in docs)
        assert metadatas == [{"lang": "en"}, {"lang": "fr"}]  # not mutated
    finally:
        store.connector.drop()
        store.close()


def test_dense_only_embeddings_refuse_a_full_collection(
    m3_store: M3VectorStore, tiny_encoder: M3Encoder
) -> None:
    with pytest.raises(InputError, match="only a dense vector"):
        M3VectorStore(m3_store.connector, embedding=DeterministicFakeEmbedding(size=32))


def test_dense_only_store_refuses_other_modes(target: Any) -> None:
    for store in _empty_store(target, DeterministicFakeEmbedding(size=8)):
        store.add_texts(["foo", "bar"], ids=["1", "2"])
        assert store.connector.spec.sparse is False
        with pytest.raises(InputError, match="dense only"):
            store.similarity_search("foo", mode="hybrid")
        relevance = store.similarity_search_with_relevance_scores("foo", k=1)
        assert relevance[0][0].id == "1"
        assert relevance[0][1] == pytest.approx(1.0, abs=1e-5)
