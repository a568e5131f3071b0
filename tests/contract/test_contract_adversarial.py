"""Adversarial input, the same answer on every backend (issue 14, items 4-7 and 9).

- Metadata keys are LITERAL keys: ``{"a.b": "x"}`` matches the document with the key ``a.b``,
  never one that a path syntax would reach (``k[0]`` is not element 0 of ``k``). A key a
  backend cannot express is refused at write time AND at query time, never stored where a
  filter cannot reach it.
- Malformed filter operands are refused by the portable filter with an InputError naming the
  key, before any backend sees them (no engine error, no coercion, no string comparison).
- Empty text and metadata outside the documented rule are refused before anything of the
  batch is written, with or without a given embedding.

Troubleshooting: "matched ... expected ..." on a literal key means the backend's filter
compiler parses keys as paths (escape or quote them: ``schemas/<db>.py``); "count after a
rejected batch" means validation ran after part of the batch was written.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from conftest import ContractBackend
from contract_data import Corpus

from m3vdb.connectors import Document, M3Embedding
from m3vdb.errors import InputError
from m3vdb.schemas.filters import Filter, eq, in_, matches, or_, parse_filter

MODES = ("dense", "sparse", "colbert", "hybrid")

# Keys every backend must take literally (stored, read back, filtered exactly).
LITERAL_KEYS = (
    "a.b",
    "k[0]",
    "t[]",
    "it's",
    "two words",
    " padded ",
    "a/b",
    "ключ",
    "日本語",
    "x-y_z",
    "$dollar",
    "a.b.c",
)
# Keys a backend may be unable to express; refused consistently where so (Qdrant: no escape
# for a double quote or a backslash in a payload path; Elasticsearch: no blank part between
# dots in a field name).
MAYBE_REFUSED_KEYS = ('say "hi"', "back\\slash", "a..b", ".lead", "trail.", "   ")
# Documents whose VALUES sit where a path reading of the keys above would look.
DECOYS = (
    Document("decoy-nested-like", "decoy one", {"a": "x", "k": ["x"], "t": ["x", "y"]}),
    Document("decoy-abc", "decoy two", {"a.b": "other", "ab": "x", "abc": "x"}),
)


def _pairs_for(corpus: Corpus, docs: list[Document], offset: int = 0) -> list[tuple]:
    return [(doc, corpus.embeddings[corpus.docs[offset + i].id]) for i, doc in enumerate(docs)]


def _query(corpus: Corpus) -> M3Embedding:
    return corpus.queries[0]


def _ids(store, query: M3Embedding, flt: Any, mode: str = "dense") -> set[str]:
    """Ids of a search; ``query`` should be a stored document's own embedding, so that the
    document is a candidate of every signal (sparse search returns only overlapping docs)."""
    return {h.id for h in store.search(query, 50, mode=mode, filter=flt)}  # type: ignore[arg-type]


def test_metadata_keys_are_literal_keys(backend: ContractBackend, corpus: Corpus) -> None:
    """``{"a.b": "x"}`` returns exactly the document with the literal key ``a.b``, in every
    mode, in every filter form; ``get`` returns the key unchanged."""
    store = backend.open()
    docs = [
        Document(f"lit-{i}", f"literal key {i}", {key: "x"}) for i, key in enumerate(LITERAL_KEYS)
    ]
    pairs = _pairs_for(corpus, docs + list(DECOYS))
    store.upsert(pairs)
    assert store.count() == len(docs) + len(DECOYS)
    stored = {d.id: dict(d.metadata) for d in store.get([d.id for d in docs + list(DECOYS)])}
    for doc in docs + list(DECOYS):
        assert stored[doc.id] == dict(doc.metadata), f"{doc.id}: metadata changed on the way"
    all_meta = {d.id: d.metadata for d in docs + list(DECOYS)}
    for i, key in enumerate(LITERAL_KEYS):
        query = pairs[i][1]
        filters: list[Filter] = [
            eq(key, "x"),
            in_(key, ["x", "y"]),
            or_(eq(key, "x"), eq(key, "zz")),
        ]
        if not key.startswith("$"):
            dict_filter = parse_filter({key: "x"})
            assert dict_filter is not None
            filters.append(dict_filter)
        for flt in filters:
            expected = {doc_id for doc_id, meta in all_meta.items() if matches(flt, meta)}
            assert expected == {f"lit-{i}"}, "test setup: the reference must match one document"
            for mode in MODES:
                got = _ids(store, query, flt, mode)
                assert got == expected, f"key {key!r}, {flt}, mode={mode}: matched {got}"


@pytest.mark.parametrize("key", MAYBE_REFUSED_KEYS)
def test_keys_a_backend_cannot_express_are_refused_at_write_and_query(
    backend: ContractBackend, corpus: Corpus, key: str
) -> None:
    """Either the key works literally, or the write AND the filter are InputErrors (and
    nothing of the batch is written)."""
    store = backend.open()
    good = Document("good", "a good document", {"lang": "en"})
    odd = Document("odd-key", "a document with an odd key", {key: "x"})
    pairs = _pairs_for(corpus, [good, odd])
    try:
        store.upsert(pairs)
    except InputError as exc:
        assert "odd-key" in str(exc) and repr(key) in str(exc), str(exc)
        assert store.count() == 0, "count after a rejected batch"
        store.upsert(pairs[:1])
        for mode in MODES:
            with pytest.raises(InputError, match="metadata key"):
                store.search(pairs[0][1], 5, mode=mode, filter=eq(key, "x"))  # type: ignore[arg-type]
        return
    assert store.count() == 2
    (back,) = store.get(["odd-key"])
    assert dict(back.metadata) == {key: "x"}
    for mode in MODES:
        assert _ids(store, pairs[1][1], eq(key, "x"), mode) == {"odd-key"}


BAD_FILTERS: dict[str, Any] = {
    "range-bound-str": {"year": {"gte": "2020"}},
    "range-bound-bool": {"year": {"lt": True}},
    "range-bound-nan": {"year": {"lt": math.nan}},
    "range-bound-list": {"year": {"gte": [2020]}},
    "or-of-empty": {"$or": [{}]},
    "and-of-empty": {"$and": [{}, {"lang": "en"}]},
    "or-empty-list": {"$or": []},
    "or-of-none": {"$or": [None]},
    "eq-list": {"lang": {"eq": ["en"]}},
    "eq-dict": {"lang": {"eq": {"v": "en"}}},
    "eq-none": {"lang": None},
    "eq-nan": {"rating": math.nan},
    "bare-list": {"lang": ["en", "de"]},
    "in-empty": {"lang": {"in": []}},
    "in-str": {"lang": {"in": "en"}},
    "in-nested": {"lang": {"in": [["en"]]}},
    "in-none": {"lang": {"in": [None]}},
    "key-not-str": {1: "en"},
    "key-empty": {"": "en"},
    "unknown-operator": {"$not": {"lang": "en"}},
    "bytes-value": {"lang": b"en"},
}


@pytest.mark.parametrize("flt", list(BAD_FILTERS.values()), ids=list(BAD_FILTERS))
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_malformed_filter_operands_are_input_errors(
    backend: ContractBackend, corpus: Corpus, flt: Any, mode: str
) -> None:
    """One error type for every backend, raised by the portable filter (never an engine
    error, a coerced bound or a string comparison)."""
    store = backend.open()
    store.upsert(corpus.pairs()[:5])
    with pytest.raises(InputError) as info:
        store.search(_query(corpus), 5, mode=mode, filter=flt)  # type: ignore[arg-type]
    assert "filter" in str(info.value) or "$" in str(info.value), str(info.value)


def test_numeric_range_bounds_compare_numbers(backend: ContractBackend, corpus: Corpus) -> None:
    """A well-typed range gives the reference answer (the typed twin of the str-bound case)."""
    store = backend.open()
    docs = [Document(f"y{y}", f"year {y}", {"year": y}) for y in (999, 2019, 2020, 10000)]
    store.upsert(_pairs_for(corpus, docs))
    assert _ids(store, _query(corpus), {"year": {"gte": 2020}}) == {"y2020", "y10000"}


@pytest.mark.parametrize("text", ["", " ", "\n\t  "], ids=["empty", "space", "whitespace"])
def test_empty_text_is_refused_even_with_an_embedding(
    backend: ContractBackend, corpus: Corpus, text: str
) -> None:
    store = backend.open()
    pairs = corpus.pairs()[:4]
    blank = (Document("blank-doc", text, {"lang": "en"}), corpus.pairs()[50][1])
    with pytest.raises(InputError, match="blank-doc"):
        store.upsert(pairs[:2] + [blank] + pairs[2:])
    assert store.count() == 0, "count after a rejected batch"


BAD_METADATA: dict[str, tuple[Any, type[Exception], str | None]] = {
    # name: (metadata, error type, the key the message must name)
    "none": (None, TypeError, None),
    "str": ("lang=en", TypeError, None),
    "list": ([("lang", "en")], TypeError, None),
    "int-and-str-key": ({1: "a", "1": "b"}, InputError, "1"),
    "empty-key": ({"": "x"}, InputError, ""),
    "set": ({"tags": {"a", "b"}}, InputError, "tags"),
    "bytes": ({"blob": b"\x00\x01"}, InputError, "blob"),
    "datetime": ({"when": datetime.datetime(2024, 5, 1)}, InputError, "when"),
    "date": ({"day": datetime.date(2024, 5, 1)}, InputError, "day"),
    "nan": ({"score": math.nan}, InputError, "score"),
    "inf": ({"score": math.inf}, InputError, "score"),
    "nan-in-list": ({"scores": [1.0, math.nan]}, InputError, "scores"),
    "nested-object": ({"author": {"name": "x"}}, InputError, "author"),
    "nested-list": ({"grid": [[1, 2]]}, InputError, "grid"),
    "tuple": ({"pair": (1, 2)}, InputError, "pair"),
    "none-value": ({"maybe": None}, InputError, "maybe"),
    "int-beyond-64-bit": ({"big": 2**64}, InputError, "big"),
    "numpy-int": ({"n": np.int64(3)}, InputError, "n"),
    "object": ({"obj": object()}, InputError, "obj"),
}


@pytest.mark.parametrize("case", list(BAD_METADATA.values()), ids=list(BAD_METADATA))
def test_metadata_outside_the_rule_is_refused_before_any_write(
    backend: ContractBackend, corpus: Corpus, case: tuple[Any, type[Exception], str | None]
) -> None:
    metadata, error, key = case
    store = backend.open()
    pairs = corpus.pairs()[:4]
    bad = (Document("bad-meta", "a document", metadata), corpus.pairs()[60][1])
    with pytest.raises(error) as info:
        store.upsert(pairs[:2] + [bad] + pairs[2:])
    message = str(info.value)
    assert "bad-meta" in message, message
    if key is not None:
        assert repr(key) in message, message
    assert store.count() == 0, "count after a rejected batch"


def test_metadata_inside_the_rule_round_trips(backend: ContractBackend, corpus: Corpus) -> None:
    metadata = {
        "s": "x",
        "unicode": "ключ 日本語 🚀",
        "yes": True,
        "no": False,
        "neg": -5,
        "big": 2**62,
        "f": 1.5,
        "tags": ["a", "b"],
        "nums": [1, 2],
        "empty": [],
        "a.b": "dotted",
    }
    store = backend.open()
    store.upsert(_pairs_for(corpus, [Document("ok", "a document", metadata)]))
    (back,) = store.get(["ok"])
    assert dict(back.metadata) == metadata
    for key, value in metadata.items():
        if isinstance(value, list) and not value:
            continue
        probe = value[0] if isinstance(value, list) else value
        assert _ids(store, _query(corpus), eq(key, probe)) == {"ok"}, key


def test_subnormal_sparse_weights_are_refused(backend: ContractBackend, corpus: Corpus) -> None:
    """Positive weights below the smallest normal float32 are no float32 a database keeps
    (Elasticsearch refuses them): refused before the batch is written."""
    store = backend.open()
    pairs = corpus.pairs()[:4]
    doc, emb = corpus.pairs()[70]
    tiny = float(np.finfo(np.float32).tiny) / 4
    bad = (doc, replace(emb, sparse={**(emb.sparse or {}), 17: tiny}))
    with pytest.raises(InputError, match="normal float32"):
        store.upsert(pairs[:2] + [bad] + pairs[2:])
    assert store.count() == 0, "count after a rejected batch"


def test_a_date_like_first_value_does_not_type_the_key(
    backend: ContractBackend, corpus: Corpus
) -> None:
    """Elasticsearch's date detection would make ``when`` a date field after the first
    document and refuse the second; every backend stores and filters both."""
    store = backend.open()
    first = Document("dated", "first", {"when": "2024-05-01"})
    second = Document("undated", "second", {"when": "soon"})
    store.upsert(_pairs_for(corpus, [first]))
    store.upsert(_pairs_for(corpus, [second], offset=1))
    assert _ids(store, _query(corpus), {"when": "soon"}) == {"undated"}
    assert _ids(store, _query(corpus), {"when": "2024-05-01"}) == {"dated"}
