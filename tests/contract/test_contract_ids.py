"""Hostile ids and invalid Unicode, the same answer on every backend (issue 26, items 1 and 7).

Ids reach a database as data, never as expression text: an id that looks like a filter
(``x'] or id not in ['``) names one document, never all of them. An id a backend cannot
address on every path is refused with an InputError naming it BEFORE anything is written, so
what a store accepts it can always fetch, scan, search, replace and delete. A string that is
not valid Unicode (a lone surrogate, as ``os.fsdecode`` gives for a non-UTF-8 file name) in an
id, a text or metadata is an InputError that says where, on every backend.

Troubleshooting: "deleted ... documents" means a delete pasted ids into an expression without
escaping them (Milvus: ``schemas/milvus.py`` ``ids_expression`` is the one place ids become
expression text; pymilvus's ``ids=`` pastes them between single quotes); "accepted but ..."
means the backend stored an id one of its paths cannot reach (add it to the backend's
``id_problem``).
"""

from __future__ import annotations

import pytest
from conftest import ContractBackend
from contract_data import Corpus

from m3vdb.connectors import Connector, Document, M3Embedding
from m3vdb.errors import InputError

MODES = ("dense", "sparse", "colbert", "hybrid")

# Ids every backend must store and address exactly.
HOSTILE_IDS = (
    'say "hi"',
    'x"] or id not in ["',
    'x" or id != "',
    "[brackets]",
    "a or b",
    "ключ/日本語/🙂",
    "a.b#0",
    "% _ * ? $ {} ()",
)
# Ids a backend may be unable to address (Milvus Lite: an apostrophe or a backslash, which
# Lite pastes between single quotes in SQL and in hybrid search; Milvus: control characters,
# its expression parsers): accepted and reachable on every path, or refused.
MAYBE_REFUSED_IDS = (
    "back\\slash",
    "trailing\\",
    '\\"',
    "it's",
    "O'Brien",
    "x'] or id not in ['",
    "x') or ('a'='a",
    "new\nline",
    "tab\there",
    "nul\x00byte",
    "esc\x1b[2J",
)


def _seed(store: Connector, corpus: Corpus, n: int = 4) -> list[Document]:
    docs = list(corpus.docs[:n])
    store.upsert([(d, corpus.embeddings[d.id]) for d in docs])
    return docs


def _hostile(corpus: Corpus, hostile_id: str, slot: int = 10) -> tuple[Document, M3Embedding]:
    source = corpus.docs[slot]
    return Document(hostile_id, source.text, {"lang": "hostile"}), corpus.embeddings[source.id]


def _ids_of_search(store: Connector, query: M3Embedding, mode: str) -> list[str]:
    return [h.id for h in store.search(query, 50, mode=mode)]  # type: ignore[arg-type]


def _assert_reachable(store: Connector, corpus: Corpus, hostile_id: str, seeded: list[Document]):
    doc, emb = _hostile(corpus, hostile_id)
    assert store.count() == len(seeded) + 1
    (back,) = store.get([hostile_id])
    assert (back.id, back.text) == (hostile_id, doc.text), "accepted but get differs"
    assert hostile_id in {d.id for d in store.scan()}, "accepted but scan misses it"
    assert {d.id for d in store.scan({"lang": "hostile"})} == {hostile_id}
    for mode in MODES:
        assert hostile_id in _ids_of_search(store, emb, mode), f"accepted but {mode} misses it"
    # Replace (an upsert of an existing id deletes first on some engines), then delete.
    store.upsert([(Document(hostile_id, "replaced text", {"lang": "hostile"}), emb)])
    assert store.count() == len(seeded) + 1
    assert [d.text for d in store.get([hostile_id])] == ["replaced text"]
    store.delete([hostile_id])
    assert store.get([hostile_id]) == [], "accepted but delete left it"
    assert store.count() == len(seeded), "delete removed other documents"
    assert {d.id for d in store.get([d.id for d in seeded])} == {d.id for d in seeded}
    for mode in MODES:
        assert hostile_id not in _ids_of_search(store, emb, mode), f"{mode} finds it deleted"


@pytest.mark.parametrize("hostile_id", HOSTILE_IDS)
def test_hostile_ids_are_stored_and_addressed_exactly(
    backend: ContractBackend, corpus: Corpus, hostile_id: str
) -> None:
    """upsert, get, scan, search (every mode, ColBERT rows included), replace and delete of an
    id full of expression syntax touch that document and no other."""
    store = backend.open()
    seeded = _seed(store, corpus)
    store.upsert([_hostile(corpus, hostile_id)])
    _assert_reachable(store, corpus, hostile_id, seeded)


@pytest.mark.parametrize("hostile_id", MAYBE_REFUSED_IDS)
def test_ids_a_backend_cannot_address_are_refused_before_writing(
    backend: ContractBackend, corpus: Corpus, hostile_id: str
) -> None:
    """Either the id works on every path, or upsert (of a batch holding it), get and delete
    all refuse it with an InputError naming it, and nothing of the batch is written."""
    store = backend.open()
    seeded = _seed(store, corpus)
    batch = [_hostile(corpus, "fine-id", slot=11), _hostile(corpus, hostile_id)]
    try:
        store.upsert(batch)
    except InputError as exc:
        assert repr(hostile_id) in str(exc), str(exc)
        assert store.count() == len(seeded), "count after a rejected batch"
        assert store.get(["fine-id"]) == [], "part of a rejected batch was written"
        for op in (store.get, store.delete):
            with pytest.raises(InputError, match="document id"):
                op([hostile_id])
        assert store.count() == len(seeded)
        return
    store.delete(["fine-id"])
    _assert_reachable(store, corpus, hostile_id, seeded)


@pytest.mark.parametrize(
    "hostile_id",
    ["x'] or id not in ['", 'x"] or id not in ["', "x' or '1'='1", "x') or ('a'='a"],
)
def test_deleting_an_injection_id_deletes_nothing_else(
    backend: ContractBackend, corpus: Corpus, hostile_id: str
) -> None:
    """Issue 26 item 1: this delete removed all 6 documents of a Milvus Lite collection."""
    store = backend.open()
    seeded = _seed(store, corpus, 6)
    try:
        store.delete([hostile_id])
    except InputError as exc:
        assert repr(hostile_id) in str(exc), str(exc)
    assert store.count() == 6, f"deleted {6 - store.count()} documents"
    assert {d.id for d in store.get([d.id for d in seeded])} == {d.id for d in seeded}


SURROGATE = "\udc80"  # os.fsdecode(b"\x80")
BAD_UNICODE = {
    "id": (Document(f"file{SURROGATE}.md", "some text", {}), "id"),
    "text": (Document("t", f"te{SURROGATE}xt", {}), "text"),
    "metadata-key": (Document("k", "some text", {f"k{SURROGATE}": "v"}), "metadata key"),
    "metadata-value": (Document("v", "some text", {"path": f"a{SURROGATE}"}), "metadata 'path'"),
    "metadata-list": (Document("l", "some text", {"tags": ["ok", SURROGATE]}), "metadata 'tags'"),
}


@pytest.mark.parametrize("case", sorted(BAD_UNICODE))
def test_invalid_unicode_is_an_input_error_that_says_where(
    backend: ContractBackend, corpus: Corpus, case: str
) -> None:
    """A lone surrogate anywhere in a document: InputError naming the place, nothing of the
    batch written (today: raw UnicodeEncodeError / TypeError from the clients)."""
    store = backend.open()
    seeded = _seed(store, corpus)
    bad, where = BAD_UNICODE[case]
    batch = [_hostile(corpus, "fine-id", slot=11), (bad, corpus.embeddings[corpus.docs[12].id])]
    with pytest.raises(InputError, match="lone surrogate") as info:
        store.upsert(batch)
    assert where in str(info.value), str(info.value)
    assert store.count() == len(seeded), "count after a rejected batch"


def test_invalid_unicode_ids_are_refused_by_get_and_delete(
    backend: ContractBackend, corpus: Corpus
) -> None:
    store = backend.open()
    seeded = _seed(store, corpus)
    for op in (store.get, store.delete):
        with pytest.raises(InputError, match="lone surrogate"):
            op([seeded[0].id, f"file{SURROGATE}.md"])
    assert store.count() == len(seeded)
