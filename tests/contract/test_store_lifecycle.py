"""The whole lifecycle through each framework store on every embedded engine (the framework leg
of the contract suite, issue 21): create through the store, write, search in every mode the
store offers, see the collection in ``m3vdb.list_collections`` with its entries and model,
drop it, and create it again through the store.

Troubleshooting: each case writes into its own temporary folder with the tiny checkpoint; a
framework or engine that is not installed skips its cases with the reason.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

import m3vdb
from m3vdb.encoder import M3Encoder

ENGINES = {
    "milvus-lite": ("milvus_lite", lambda tmp: f"milvus-lite:{tmp / 'store.db'}"),
    "qdrant-local": ("qdrant_client", lambda tmp: f"qdrant+local:{tmp / 'qdrant'}"),
    "qdrant-edge": ("qdrant_edge", lambda tmp: f"qdrant+edge:{tmp / 'edge'}"),
}
TEXTS = [
    "BGE-M3 gives dense, sparse and ColBERT vectors from one pass.",
    "Milvus stores sparse vectors in an inverted index.",
    "Qdrant keeps named vectors and multivectors.",
]
QUERY = "sparse vectors"


def _target(engine: str, tmp_path: Path) -> str:
    package, make = ENGINES[engine]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    return make(tmp_path)


def _listed(target: str, name: str, open_client: object = None) -> m3vdb.CollectionInfo | None:
    """The collection as ``m3vdb.list_collections`` reports it. Qdrant local mode allows one
    client per folder: while a store holds it, the listing goes through that client."""
    where = open_client if open_client is not None and "qdrant+local" in target else target
    return next((c for c in m3vdb.list_collections(where) if c.name == name), None)


def _langchain(target: str, encoder: M3Encoder) -> Callable[[], None]:
    pytest.importorskip("langchain_core")
    from m3vdb.langchain import M3VectorStore

    def cycle() -> None:
        with M3VectorStore.connect(target, collection="lc", embedding=encoder) as store:
            store.add_texts(TEXTS, ids=["a", "b", "c"])
            for mode in ("dense", "sparse", "colbert", "hybrid"):
                assert store.similarity_search(QUERY, k=2, mode=mode), mode
            info = _listed(target, "lc", store.connector.client)
            assert info is not None and info.entries == 3
            assert info.spec is not None and info.spec.model == encoder.model_name
            store.connector.drop()
        assert _listed(target, "lc") is None

    return cycle


def _llama_index(target: str, encoder: M3Encoder) -> Callable[[], None]:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from m3vdb.llama_index import M3VectorStore

    def cycle() -> None:
        store = M3VectorStore.connect(target, collection="li", encoder=encoder)
        try:
            store.add([TextNode(id_=f"n{i}", text=t) for i, t in enumerate(TEXTS)])
            for mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.HYBRID):
                query = VectorStoreQuery(query_str=QUERY, similarity_top_k=2, mode=mode)
                assert store.query(query).ids, mode
            dense = VectorStoreQuery(
                query_embedding=encoder.encode([QUERY])[0].dense.tolist(),  # type: ignore[union-attr]
                similarity_top_k=2,
            )
            assert store.query(dense).ids
            info = _listed(target, "li", store.connector.client)
            assert info is not None and info.entries == 3
            store.connector.drop()
        finally:
            store.close()
        assert _listed(target, "li") is None

    return cycle


def _haystack(target: str, encoder: M3Encoder) -> Callable[[], None]:
    pytest.importorskip("haystack")
    from haystack import Document as HDocument

    from m3vdb.haystack import (
        M3DocumentStore,
        M3EmbeddingRetriever,
        M3HybridRetriever,
        M3SparseEmbeddingRetriever,
        M3TextEmbedder,
    )

    def cycle() -> None:
        store = M3DocumentStore(target, collection="hs", encoder=encoder)
        try:
            store.write_documents([HDocument(id=f"h{i}", content=t) for i, t in enumerate(TEXTS)])
            embedded = M3TextEmbedder(encoder=encoder).run(text=QUERY)
            dense = M3EmbeddingRetriever(store, top_k=2).run(query_embedding=embedded["embedding"])
            sparse = M3SparseEmbeddingRetriever(store, top_k=2).run(
                query_sparse_embedding=embedded["sparse_embedding"]
            )
            hybrid = M3HybridRetriever(store, top_k=2).run(query=QUERY)
            assert all(r["documents"] for r in (dense, sparse, hybrid))
            info = _listed(target, "hs", store.connector.client)
            assert info is not None and info.entries == 3
            store.delete_all_documents(recreate_index=True)  # drop and create again
            assert store.count_documents() == 0
            assert _listed(target, "hs", store.connector.client) is not None
            store.connector.drop()
        finally:
            store.close()
        assert _listed(target, "hs") is None

    return cycle


STORES = {"langchain": _langchain, "llama_index": _llama_index, "haystack": _haystack}


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("framework", sorted(STORES))
def test_the_lifecycle_through_each_framework_store(
    framework: str, engine: str, tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    target = _target(engine, tmp_path)
    cycle = STORES[framework](target, tiny_encoder)
    cycle()
    cycle()  # recreated through the store, after the drop
