"""The LangChain, LlamaIndex and Haystack stores index and search through a ``RemoteEncoder``
against one ``m3vdb serve`` (many RAG processes, one model), and find the same documents with
the same scores as with the local encoder the server runs.

Troubleshooting: the server runs in a thread of this process on a loopback port (uvicorn);
scores may differ by ~1e-7 (the server batches texts differently), the tests allow 1e-5.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from live_server import running

from m3vdb import RemoteEncoder
from m3vdb.encoder import M3Encoder

pytest.importorskip("uvicorn", reason="uvicorn is in the serve extra")
pytest.importorskip("qdrant_client", reason="the stores write to Qdrant local mode here")

TOL = 1e-5
TEXTS = [
    "BGE-M3 gives three representations from one forward pass.",
    "Milvus stores sparse vectors in an inverted index.",
    "Qdrant keeps named vectors and multivectors.",
    "El río cruza el valle verde.",
]
QUERY = "sparse vectors"


@pytest.fixture(scope="module")
def url(tiny_encoder: M3Encoder) -> Iterator[str]:
    from m3vdb.serve import ServeConfig, create_app

    with running(create_app(tiny_encoder, ServeConfig(model_name="tiny-bge-m3"))) as (base, _):
        yield base


def _same(local: list[tuple[str, float]], served: list[tuple[str, float]]) -> None:
    assert local, "the local store found nothing: the comparison would prove nothing"
    assert [i for i, _ in local] == [i for i, _ in served]
    assert np.allclose([s for _, s in local], [s for _, s in served], atol=TOL)


def test_langchain_store_with_a_remote_encoder(url: str, tiny_encoder: M3Encoder) -> None:
    pytest.importorskip("langchain_core")
    from m3vdb.langchain import M3Embeddings, M3VectorStore

    found = []
    with RemoteEncoder(url) as remote:
        for encoder in (tiny_encoder, remote):
            with M3VectorStore.connect(
                "qdrant+memory://", collection="lc", embedding=encoder
            ) as store:
                store.add_texts(TEXTS, ids=[f"d{i}" for i in range(len(TEXTS))])
                hits = store.similarity_search_with_score(QUERY, k=3, mode="hybrid")
                found.append([(d.id or "", s) for d, s in hits])
        assert M3Embeddings(remote).embed_query(QUERY) == pytest.approx(
            M3Embeddings(tiny_encoder).embed_query(QUERY), abs=TOL
        )
    _same(*found)


def test_llama_index_store_with_a_remote_encoder(url: str, tiny_encoder: M3Encoder) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from m3vdb.llama_index import M3VectorStore

    found = []
    with RemoteEncoder(url) as remote:
        for encoder in (tiny_encoder, remote):
            store = M3VectorStore.connect("qdrant+memory://", collection="li", encoder=encoder)
            try:
                store.add([TextNode(id_=f"n{i}", text=t) for i, t in enumerate(TEXTS)])
                query = VectorStoreQuery(
                    query_str=QUERY, similarity_top_k=3, mode=VectorStoreQueryMode.HYBRID
                )
                result = store.query(query)
                found.append(list(zip(result.ids or [], result.similarities or [])))
            finally:
                store.close()
    _same(*found)


def test_haystack_store_with_a_served_encoder(url: str, tiny_encoder: M3Encoder) -> None:
    """``encoder_url=`` makes the store (and the embedders) encode through the server; it is
    what ``to_dict`` records, so a serialised pipeline reconnects to the same server."""
    pytest.importorskip("haystack")
    from haystack import Document as HDocument

    from m3vdb.haystack import M3DocumentStore, M3HybridRetriever

    found = []
    stores = [
        M3DocumentStore("qdrant+memory://", collection="hs", encoder=tiny_encoder),
        M3DocumentStore("qdrant+memory://", collection="hs", model=None, encoder_url=url),
    ]
    for store in stores:
        try:
            store.write_documents([HDocument(id=f"h{i}", content=t) for i, t in enumerate(TEXTS)])
            docs = M3HybridRetriever(store, top_k=3).run(query=QUERY)["documents"]
            found.append([(d.id, d.score) for d in docs])
        finally:
            store.close()
    assert isinstance(stores[1].encoder, RemoteEncoder)
    assert stores[1].to_dict()["init_parameters"]["encoder_url"] == url
    _same(*found)
