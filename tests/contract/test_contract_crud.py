"""Writes, reads, schema validation and bad input, the same on every backend.

Troubleshooting: "count ... after a rejected batch" means part of a batch was written before
validation failed (validate the whole batch, then write); a SchemaMismatchError test that
fails means reopening a collection did not compare it with the IndexSpec.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import ContractBackend, corpus_spec
from contract_data import DIM, Corpus, SyntheticEncoder

from m3vdb.connectors import Connector, Document, M3Embedding
from m3vdb.errors import (
    CollectionNotFoundError,
    InputError,
    M3VDBError,
    SchemaMismatchError,
)


def _emb(corpus: Corpus, i: int) -> M3Embedding:
    return corpus.embeddings[corpus.docs[i].id]


def test_fresh_collection_is_empty_and_satisfies_protocol(
    backend: ContractBackend, corpus: Corpus
) -> None:
    store = backend.open()
    assert isinstance(store, Connector)
    assert store.count() == 0
    assert store.spec == corpus_spec()
    for mode in ("dense", "sparse", "colbert", "hybrid"):
        assert store.search(corpus.queries[0], 5, mode=mode) == []  # type: ignore[arg-type]


def test_upsert_is_idempotent_by_id(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    pairs = corpus.pairs()[:40]
    assert store.upsert(pairs, batch_size=16) == 40
    assert store.upsert(pairs, batch_size=16) == 40
    assert store.count() == 40
    # an update replaces text, metadata and every vector of the id
    doc, _ = pairs[5]
    new_doc = Document(doc.id, "völlig neuer Text 🚀", {"lang": "de", "year": 1999})
    new_emb = _emb(corpus, 200)
    store.upsert([(new_doc, new_emb)])
    assert store.count() == 40
    (got,) = store.get([doc.id])
    assert got == Document(doc.id, "völlig neuer Text 🚀", {"lang": "de", "year": 1999})
    for mode in ("dense", "sparse", "colbert"):
        hits = store.search(new_emb, 1, mode=mode)  # type: ignore[arg-type]
        assert [h.id for h in hits] == [doc.id], mode


def test_upsert_streams_an_iterator_with_progress(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    stream = (pair for pair in corpus.pairs()[:50])
    assert store.upsert(stream, batch_size=7, show_progress=True) == 50
    assert store.count() == 50


def test_get_keeps_order_and_skips_missing(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    store.upsert(corpus.pairs()[:30])
    wanted = [corpus.docs[7].id, "no-such-id", corpus.docs[2].id, corpus.docs[29].id]
    got = store.get(wanted)
    assert [d.id for d in got] == [wanted[0], wanted[2], wanted[3]]
    by_id = {d.id: d for d in corpus.docs}
    for d in got:
        assert d.text == by_id[d.id].text
        assert dict(d.metadata) == dict(by_id[d.id].metadata)
    assert store.get([]) == []


def test_metadata_and_text_round_trip(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    doc = Document(
        "ünïcödé-id-文档",
        "مرحبا 世界 Привет 👋🏽 tab\tnewline\n end",
        {"lang": "ar", "year": 2024, "rating": 4.5, "public": False, "tags": ["a", "b"]},
    )
    store.upsert([(doc, _emb(corpus, 0))])
    assert store.get([doc.id]) == [doc]


def test_delete_removes_everything_of_the_ids(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    pairs = corpus.pairs()[:30]
    store.upsert(pairs)
    gone = [pairs[0][0].id, pairs[1][0].id]
    store.delete(gone + ["unknown-id"])
    assert store.count() == 28
    assert store.get(gone) == []
    for mode in ("dense", "sparse", "colbert", "hybrid"):
        hits = store.search(pairs[0][1], 30, mode=mode)  # type: ignore[arg-type]
        assert not {h.id for h in hits} & set(gone), mode
    store.delete([])
    assert store.count() == 28


def test_drop_then_reopen_is_empty(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    store.upsert(corpus.pairs()[:10])
    store.drop()
    again = backend.open(collection=store.collection)
    assert again.count() == 0


def test_reopen_keeps_data(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    store.upsert(corpus.pairs()[:10])
    again = backend.open(collection=store.collection)
    assert again.count() == 10
    assert [h.id for h in again.search(_emb(corpus, 3), 1, mode="dense")] == [corpus.docs[3].id]


def test_open_without_create_refuses_a_missing_collection(
    backend: ContractBackend, corpus: Corpus
) -> None:
    """``create=False`` (how the CLI opens a collection to search it) must raise and create
    nothing: a second attempt fails the same way. If it passes the first time and fails the
    second, the failed open created the collection."""
    name = backend.fresh_name()
    for _ in range(2):
        with pytest.raises(CollectionNotFoundError) as info:
            backend.open(collection=name, create=False)
        assert name in str(info.value) and info.value.caller_fault
    # a missing collection is not a mismatch: callers catch the two separately
    assert not isinstance(info.value, SchemaMismatchError)
    store = backend.open(collection=name)  # created now
    store.upsert(corpus.pairs()[:3])
    with backend.open(collection=name, create=False) as reader:
        assert reader.count() == 3


@pytest.mark.parametrize(
    "change",
    [
        {"dense_dim": DIM + 1},
        {"colbert_dim": DIM * 2},
        {"dense_metric": "cosine"},
        {"colbert_precision": "float16"},
    ],
    ids=["dense-dim", "colbert-dim", "metric", "precision"],
)
def test_reopen_with_another_spec_is_a_schema_mismatch(
    backend: ContractBackend, change: dict
) -> None:
    store = backend.open()
    with pytest.raises(SchemaMismatchError) as info:
        backend.open(replace(corpus_spec(), **change), collection=store.collection)
    assert store.collection in str(info.value)


def test_reopen_missing_a_stored_output_is_a_schema_mismatch(backend: ContractBackend) -> None:
    store = backend.open(corpus_spec(sparse=False))
    with pytest.raises(SchemaMismatchError):
        backend.open(corpus_spec(), collection=store.collection)


def _nan_dense(e: M3Embedding) -> M3Embedding:
    d = e.dense.copy()  # type: ignore[union-attr]
    d[3] = np.nan
    return replace(e, dense=d)


def _nan_colbert(e: M3Embedding) -> M3Embedding:
    c = e.colbert.copy()  # type: ignore[union-attr]
    c[0, 0] = np.nan
    return replace(e, colbert=c)


BAD_ITEMS = {
    "empty-sparse": lambda d, e: (d, replace(e, sparse={})),
    "zero-weight": lambda d, e: (d, replace(e, sparse={17: 0.0, 18: 0.2})),
    "negative-weight": lambda d, e: (d, replace(e, sparse={17: -0.1})),
    "nan-weight": lambda d, e: (d, replace(e, sparse={17: float("nan")})),
    "key-not-token-id": lambda d, e: (d, replace(e, sparse={-3: 0.5})),
    "nan-dense": lambda d, e: (d, _nan_dense(e)),
    "wrong-dense-dim": lambda d, e: (d, replace(e, dense=np.ones(DIM + 1, np.float32))),
    "wrong-colbert-dim": lambda d, e: (d, replace(e, colbert=np.ones((3, DIM - 1), np.float32))),
    "no-colbert-rows": lambda d, e: (d, replace(e, colbert=np.ones((0, DIM), np.float32))),
    "nan-colbert": lambda d, e: (d, _nan_colbert(e)),
    "missing-colbert": lambda d, e: (d, replace(e, colbert=None)),
    "non-str-id": lambda d, e: (Document(7, d.text, d.metadata), e),  # type: ignore[arg-type]
    "empty-id": lambda d, e: (Document("", d.text, d.metadata), e),
    "duplicate-id": lambda d, e: (Document("doc-0000-en", d.text, d.metadata), e),
    "not-a-document": lambda d, e: ({"id": d.id, "text": d.text}, e),
}


WRONG_TYPES = (BAD_ITEMS["non-str-id"], BAD_ITEMS["not-a-document"])


@pytest.mark.parametrize("make_bad", list(BAD_ITEMS.values()), ids=list(BAD_ITEMS))
def test_bad_input_raises_and_writes_nothing_of_the_batch(
    backend: ContractBackend, corpus: Corpus, make_bad
) -> None:
    store = backend.open()
    pairs = corpus.pairs()[:6]
    assert pairs[0][0].id == "doc-0000-en"
    bad = make_bad(*corpus.pairs()[100])
    batch = pairs[:3] + [bad] + pairs[3:]
    # a wrong type is a TypeError, a wrong value an InputError (the rule on every backend)
    expected = TypeError if make_bad in WRONG_TYPES else InputError
    with pytest.raises(expected):
        store.upsert(batch, batch_size=64)
    assert store.count() == 0, "count after a rejected batch"


@pytest.mark.parametrize("text", ["", "   \n\t"], ids=["empty", "whitespace"])
def test_empty_text_raises_before_encoding(
    backend: ContractBackend, corpus: Corpus, text: str
) -> None:
    encoder = SyntheticEncoder()
    store = backend.open(encoder=encoder)
    docs = list(corpus.docs[:4]) + [Document("blank", text)]
    with pytest.raises(InputError, match="blank"):
        store.upsert(docs)
    assert encoder.calls == 0
    assert store.count() == 0


def test_documents_without_encoder_raise(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open()
    with pytest.raises(InputError, match="encoder"):
        store.upsert(corpus.docs[:3])
    with pytest.raises(InputError, match="encoder"):
        store.search("a text query", 3)
    assert store.count() == 0


def test_only_the_failing_batch_is_not_written(backend: ContractBackend, corpus: Corpus) -> None:
    """Batches before the bad one are written (streaming); the bad batch is not."""
    store = backend.open()
    pairs = corpus.pairs()[:25]
    bad = (pairs[22][0], replace(pairs[22][1], sparse={}))
    with pytest.raises(InputError, match=pairs[22][0].id):
        store.upsert(pairs[:22] + [bad] + pairs[23:], batch_size=10)
    assert store.count() == 20


@pytest.mark.parametrize(
    "call",
    [
        lambda s, q: s.search(q, 0),
        lambda s, q: s.search(q, 5, mode="bm25"),
        lambda s, q: s.search(replace(q, dense=np.ones(DIM + 2, np.float32)), 5, mode="dense"),
        lambda s, q: s.search(replace(q, colbert=np.ones((2, 3), np.float32)), 5, mode="colbert"),
        lambda s, q: s.search(_nan_dense(q), 5, mode="dense"),
        lambda s, q: s.search("   ", 5),
        lambda s, q: s.search(q, 5, filter={"year": {"near": 3}}),
        lambda s, q: s.get("doc-0000-en"),
    ],
    ids=["k0", "mode", "dense-dim", "colbert-dim", "nan", "blank-text", "filter-op", "get-str"],
)
def test_bad_queries_raise_input_error(backend: ContractBackend, corpus: Corpus, call) -> None:
    store = backend.open(encoder=SyntheticEncoder())
    store.upsert(corpus.pairs()[:5])
    with pytest.raises(InputError):
        call(store, corpus.queries[0])


def test_mode_needing_an_output_not_stored(backend: ContractBackend, corpus: Corpus) -> None:
    store = backend.open(corpus_spec(colbert=False))
    with pytest.raises(M3VDBError):
        store.search(corpus.queries[0], 3, mode="colbert")


@pytest.mark.parametrize("missing", ["dense", "sparse"])
def test_hybrid_on_a_collection_missing_a_signal_is_refused(
    backend: ContractBackend, corpus: Corpus, missing: str
) -> None:
    """ONE behaviour on every backend: hybrid fuses dense AND sparse, so a collection without
    one of them refuses it with an InputError that names the modes it can answer (never a
    silent fallback to one signal, whose scores mean something else). If this fails on one
    backend only, its connector bypasses ``connectors.plan.build_plan``."""
    store = backend.open(corpus_spec(**{missing: False}))
    store.upsert((doc, replace(emb, **{missing: None})) for doc, emb in corpus.pairs()[:5])
    with pytest.raises(InputError, match="hybrid") as info:
        store.search(corpus.queries[0], 3, mode="hybrid")
    assert "colbert" in str(info.value)  # the modes left are named
    other = "sparse" if missing == "dense" else "dense"
    assert store.search(corpus.queries[0], 3, mode=other)  # the other signal still answers


def test_a_collection_dropped_elsewhere_is_collection_not_found(
    backend: ContractBackend, corpus: Corpus
) -> None:
    """Every backend raises the same type for a collection dropped while a connector is open
    (by another process, another connector): CollectionNotFoundError, the caller's to fix by
    reopening (which recreates it). A BackendError here means the backend's translate_error
    does not recognise its database's "no such collection" error."""
    store = backend.open()
    store.upsert(corpus.pairs()[:3])
    other = backend.open(collection=store.collection)
    other.drop()
    calls = {
        "count": lambda: store.count(),
        "get": lambda: store.get(["doc-0000-en"]),
        "search": lambda: store.search(corpus.queries[0], 3, mode="dense"),
        "delete": lambda: store.delete(["doc-0000-en"]),
        # not upsert: Elasticsearch auto-creates a missing index on a bulk write (its
        # action.auto_create_index default), so a write after a drop cannot fail there.
    }
    for name, call in calls.items():
        with pytest.raises(CollectionNotFoundError, match=store.collection):
            call()
        with pytest.raises(CollectionNotFoundError):  # a failed call recreated nothing
            backend.open(collection=store.collection, create=False)
        assert name
