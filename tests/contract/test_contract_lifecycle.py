"""The whole lifecycle of a collection through the Python front door (``m3vdb.connect``,
``m3vdb.list_collections``, ``m3vdb.drop``) on every backend: create, upsert, search in every
mode, list (with entries and the recorded spec), reopen as it is without an encoder or spec,
refuse an encoder of other dimensions, drop, recreate.

Troubleshooting: a failure in ``list_collections`` or in reopening without a spec means the
engine did not record its spec in the database's native place (Milvus: the collection
description; Qdrant: collection metadata; edge: ``m3vdb.json`` in the shard folder;
Elasticsearch: the mapping's ``_meta``).
"""

from __future__ import annotations

import pytest
from conftest import ContractBackend, corpus_spec
from contract_data import DIM, Corpus

import m3vdb
from m3vdb.errors import CollectionNotFoundError, SchemaMismatchError

MODES = ("dense", "sparse", "colbert", "hybrid")


class _OtherEncoder:
    """An encoder of other dimensions than the collection's (never asked to encode)."""

    dense_dim = DIM + 1
    colbert_dim = DIM + 1
    model_name = "other-model"

    def encode(self, texts, *, dense=True, sparse=True, colbert=True):  # type: ignore[no-untyped-def]
        raise AssertionError("a refused encoder must never encode")


def _names(target: object) -> dict[str, m3vdb.CollectionInfo]:
    return {info.name: info for info in m3vdb.list_collections(target)}


def test_lifecycle_through_the_front_door(backend: ContractBackend, corpus: Corpus) -> None:
    target = backend.started.target
    name = backend.fresh_name()
    spec = corpus_spec(model="tiny-m3-test")
    pairs = corpus.pairs()[:20]
    try:
        with m3vdb.connect(target, collection=name, spec=spec) as store:
            assert isinstance(store, m3vdb.Collection)
            assert store.upsert(pairs) == 20
            for mode in MODES:
                hits = store.search(corpus.queries[0], 5, mode=mode)  # type: ignore[arg-type]
                # sparse finds only documents sharing a token with the query: maybe fewer
                assert 1 <= len(hits) <= 5 and (mode == "sparse" or len(hits) == 5), mode
                assert {h.id for h in hits} <= {d.id for d, _ in pairs}
        listed = _names(target)
        assert name in listed, sorted(listed)
        assert listed[name].entries == 20
        assert listed[name].spec == spec  # model, dimensions, outputs, metadata fields
        # Milvus's companion collection of ColBERT rows is m3vdb's, not listed.
        assert not any(n.startswith(name) and n != name for n in listed)

        # Reopened as it is: no encoder, no spec; the recorded spec, not BGE-M3's 1024 dims.
        with m3vdb.connect(target, collection=name, create=False) as reopened:
            assert reopened.spec == spec
            assert reopened.count() == 20
            assert reopened.search(corpus.queries[1], 3, mode="dense")
        with pytest.raises(SchemaMismatchError) as info:
            m3vdb.connect(target, collection=name, encoder=_OtherEncoder())
        message = str(info.value)
        assert f"({DIM}, {DIM})" in message and f"({DIM + 1}, {DIM + 1})" in message
        assert "tiny-m3-test" in message and "other-model" in message

        assert m3vdb.drop(target, collection=name) is True
        assert name not in _names(target)
        assert m3vdb.drop(target, collection=name) is False
        with pytest.raises(CollectionNotFoundError):
            m3vdb.connect(target, collection=name, spec=spec, create=False)

        # Recreated under the same name: empty, and recorded again.
        with m3vdb.connect(target, collection=name, spec=spec) as again:
            assert again.count() == 0
            again.upsert(pairs[:3])
        assert _names(target)[name].entries == 3
    finally:
        m3vdb.drop(target, collection=name)


def test_delete_where_deletes_exactly_the_matches(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    pairs = corpus.pairs()[:30]
    store.upsert(pairs)
    lang = pairs[0][0].metadata["lang"]
    store.delete_where({"lang": lang})  # type: ignore[attr-defined]
    left = {d.id for d in store.scan()}  # type: ignore[attr-defined]
    assert left == {d.id for d, _ in pairs if d.metadata["lang"] != lang}
