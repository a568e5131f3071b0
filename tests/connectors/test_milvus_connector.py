"""Milvus-specific behaviour of connectors.milvus on Milvus Lite (the portable behaviour is the
contract suite's): the companion ColBERT layout and its failure atomicity, retries and error
translation, filter expressions evaluated by Milvus against ``filters.matches``, URL forms.

Troubleshooting: Milvus Lite runs as a subprocess per client; one client serves this module.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

import oracles  # noqa: E402
from milvus_helpers import (  # noqa: E402
    DIM,
    SPEC,
    FlakyClient,
    _always,
    _connector,
    _docs,
    _emb,
    _fail_on_call,
    _fail_times,
    _row_count,
)
from pymilvus import MilvusClient  # noqa: E402
from pymilvus.exceptions import MilvusException  # noqa: E402

from m3vdb.connectors import Collection, connect  # noqa: E402
from m3vdb.connectors import milvus as cm  # noqa: E402
from m3vdb.connectors.milvus import colbert  # noqa: E402
from m3vdb.errors import (  # noqa: E402
    BackendError,
    CollectionNotFoundError,
    InputError,
    MissingDependencyError,
    SchemaMismatchError,
)
from m3vdb.schemas import milvus as ms  # noqa: E402
from m3vdb.schemas.data import Document, M3Embedding  # noqa: E402
from m3vdb.schemas.filters import matches, parse_filter  # noqa: E402
from m3vdb.schemas.spec import IndexSpec  # noqa: E402


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusClient]:
    client = MilvusClient(str(tmp_path_factory.mktemp("milvus") / "unit.db"))
    yield client
    client.close()


@pytest.fixture
def name(request: pytest.FixtureRequest, lite: MilvusClient) -> Iterator[str]:
    collection = "t_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    yield collection[:200]
    for c in (collection, ms.companion_name(collection)):
        if lite.has_collection(c):
            lite.drop_collection(c)


def test_lite_is_detected_and_gets_the_companion_layout(lite, name):
    assert cm.detect_capabilities(lite) == ms.MilvusCapabilities.for_lite()
    con = connect(lite, collection=name, spec=SPEC)
    assert con.colbert_layout == "companion"
    assert lite.has_collection(ms.companion_name(name))
    con.drop()
    assert not lite.has_collection(name) and not lite.has_collection(ms.companion_name(name))


def test_reopen_validates_and_reports_mismatch(lite, name):
    con = _connector(lite, name)
    con.upsert(_docs(3))
    assert _connector(lite, name).count() == 3
    with pytest.raises(SchemaMismatchError) as info:
        _connector(lite, name, IndexSpec(dense_dim=DIM + 1, colbert_dim=DIM + 2))
    message = str(info.value)
    assert f"field 'dense': dim is {DIM}, expected {DIM + 1}" in message
    assert f"field 'vec': dim is {DIM}, expected {DIM + 2}" in message
    assert "drop it" in message


def test_upsert_replaces_colbert_rows(lite, name):
    con = _connector(lite, name)
    con.upsert(_docs(3))
    replaced = [(Document("d1", "new", {"i": 9}), _emb(99, rows=2))]
    con.upsert(replaced)
    companion = ms.companion_name(name)
    assert _row_count(lite, companion, 'doc_id == "d1"') == 2
    assert _row_count(lite, companion) == 2 + 2 * 4
    stored = con.get_embeddings(["d1"])["d1"]
    np.testing.assert_allclose(stored.colbert, replaced[0][1].colbert)
    con.delete(["d1", "unknown"])
    assert con.count() == 2 and _row_count(lite, companion, 'doc_id == "d1"') == 0


def _assert_old_document_intact(con: Collection, old: M3Embedding) -> None:
    assert [d.text for d in con.get(["d0"])] == ["text 0"]
    stored = con.get_embeddings(["d0"])["d0"]
    assert stored.colbert is not None and old.colbert is not None
    np.testing.assert_allclose(stored.colbert, old.colbert)
    hits = con.search(old, 1, mode="colbert")
    assert hits[0].id == "d0"
    assert hits[0].score == pytest.approx(oracles.maxsim(old.colbert, old.colbert), abs=1e-4)


def test_failed_main_write_leaves_old_document_whole(lite, name):
    flaky = FlakyClient(lite)
    con = _connector(flaky, name)
    original = _docs(1)
    con.upsert(original)
    flaky.fail[("upsert", name)] = _always(MilvusException(code=65535, message="disk full"))
    with pytest.raises(BackendError, match="disk full"):
        con.upsert([(Document("d0", "new text"), _emb(5, rows=7))])
    _assert_old_document_intact(con, original[0][1])
    # the new version's rows were removed again
    assert _row_count(lite, ms.companion_name(name)) == 4


def test_failed_row_write_midway_is_cleaned_up(lite, name, monkeypatch):
    flaky = FlakyClient(lite)
    con = _connector(flaky, name)
    original = _docs(1)
    con.upsert(original)
    monkeypatch.setattr(colbert, "INSERT_BYTES", 4 * DIM * 3)  # 3 rows per request
    error = MilvusException(code=65535, message="boom")
    flaky.fail[("insert", ms.companion_name(name))] = _fail_on_call(2, error)
    with pytest.raises(BackendError, match="boom"):
        con.upsert([(Document("d0", "new text"), _emb(5, rows=7))])
    _assert_old_document_intact(con, original[0][1])
    assert _row_count(lite, ms.companion_name(name)) == 4


def test_cleanup_failure_leaves_only_invisible_rows(lite, name, caplog):
    """The leftover rows are logged at debug level, never shown as a warning (issue 10)."""
    flaky = FlakyClient(lite)
    con = _connector(flaky, name)
    original = _docs(1)
    con.upsert(original)
    flaky.fail[("upsert", name)] = _always(MilvusException(code=65535, message="boom"))
    flaky.fail[("delete", ms.companion_name(name))] = _always(MilvusException(message="down"))
    caplog.set_level(logging.DEBUG, logger=colbert.__name__)
    with warnings.catch_warnings(), pytest.raises(BackendError):
        warnings.simplefilter("error", UserWarning)
        con.upsert([(Document("d0", "new text"), _emb(5, rows=7))])
    assert any(r.levelno == logging.DEBUG and "invisible" in r.getMessage() for r in caplog.records)
    assert _row_count(lite, ms.companion_name(name)) == 4 + 7  # orphans are there...
    _assert_old_document_intact(con, original[0][1])  # ...and ignored


def test_stale_row_delete_failure_is_logged_and_new_version_wins(lite, name, caplog):
    flaky = FlakyClient(lite)
    con = _connector(flaky, name)
    con.upsert(_docs(1))
    flaky.fail[("delete", ms.companion_name(name))] = _always(MilvusException(message="down"))
    new = _emb(5, rows=7)
    caplog.set_level(logging.DEBUG, logger=colbert.__name__)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        con.upsert([(Document("d0", "new text"), new)])
    assert any(
        r.levelno == logging.DEBUG and "old ColBERT rows" in r.getMessage() for r in caplog.records
    )
    np.testing.assert_allclose(con.get_embeddings(["d0"])["d0"].colbert, new.colbert)
    hits = con.search(new, 1, mode="colbert")
    assert hits[0].score == pytest.approx(oracles.maxsim(new.colbert, new.colbert), abs=1e-4)
    del flaky.fail[("delete", ms.companion_name(name))]
    con.upsert([(Document("d0", "again"), new)])  # the next write removes the stale rows
    assert _row_count(lite, ms.companion_name(name)) == 7


def test_transient_errors_are_retried(lite, name, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    flaky = FlakyClient(lite)
    con = _connector(flaky, name)
    flaky.fail[("upsert", name)] = _fail_times(2, MilvusException(code=8, message="rate limit"))
    assert con.upsert(_docs(2)) == 2
    assert con.count() == 2
    flaky.fail[("upsert", name)] = _always(MilvusException(code=8, message="rate limit"))
    with pytest.raises(BackendError) as info:
        con.upsert(_docs(2))
    assert info.value.retriable


def test_errors_are_translated(lite, name):
    flaky = FlakyClient(lite)
    con = _connector(flaky, name)
    flaky.fail[("search", name)] = _always(MilvusException(code=1100, message="bad expr"))
    with pytest.raises(InputError, match="bad expr"):
        con.search(_emb(1), 3, mode="dense")
    flaky.fail[("search", name)] = _always(MilvusException(code=100, message="gone"))
    with pytest.raises(CollectionNotFoundError, match="dropped") as info:
        con.search(_emb(1), 3, mode="dense")
    assert info.value.caller_fault and not info.value.retriable


def test_batch_is_validated_before_anything_is_written(lite, name):
    con = _connector(lite, name)
    batch = _docs(3)
    batch.append((Document("long", "x" * 70000), _emb(7)))
    with pytest.raises(InputError, match="65535"):
        con.upsert(batch, batch_size=10)
    assert con.count() == 0 and _row_count(lite, ms.companion_name(name)) == 0


METADATA = [
    {"lang": "en", "year": 2020, "q": 'say "hi"', "flag": True, "years": 2023},
    {"lang": "de", "year": 2021.5, "q": "back\\slash", "flag": False},
    {"lang": "Zoë", "year": "2022", "tags": "a"},
    {"year": 2019, "q": "it's"},
    {"lang": ["en", "fr"], "years": [1990, 2030], "flag": [False], "n": 1, "tags": []},
    {"lang": ["de"], "years": [2021], "flag": 1, "n": True, "tags": ["a", 2, 2.5]},
]
FILTERS = [
    {"lang": "en"},
    {"q": 'say "hi"'},
    {"q": "back\\slash"},
    {"q": "it's"},
    {"lang": "Zoë"},
    {"flag": True},
    {"flag": False},
    {"lang": {"in": ["de", "Zoë"]}},
    {"year": {"gte": 2020}},
    {"year": {"gt": 2020, "lte": 2022}},
    {"$or": [{"lang": "en"}, {"year": {"lt": 2020}}]},
    {"lang": "en", "year": {"gte": 2021}},
    {"missing": 1},
    # list values: eq / in match any element; ranges match scalars only on Milvus
    {"lang": {"in": ["fr", "xx"]}},
    {"tags": "a"},
    {"tags": 2},
    {"tags": 2.5},
    {"tags": {"in": ["a", 2, 2.5, True]}},
    {"$or": [{"lang": "fr"}, {"flag": True}]},
    # JSON types: true is not 1, 1 is not true
    {"flag": 1},
    {"n": True},
    {"n": 1},
    {"flag": {"in": [False, 1]}},
]
# Ranges over list values (Milvus cannot express them: documented in ms.compile_filter).
RANGE_OVER_LISTS = [{"years": {"gte": 2025}}, {"years": {"gte": 2000, "lt": 2024}}]


@pytest.mark.parametrize("flt", FILTERS, ids=[str(f) for f in FILTERS])
def test_filter_expressions_agree_with_matches(lite, flt):
    collection = "filters"
    if not lite.has_collection(collection):
        con = _connector(lite, collection, IndexSpec(dense_dim=DIM, sparse=False, colbert=False))
        docs = [(Document(f"m{i}", "t", m), _emb(i)) for i, m in enumerate(METADATA)]
        con.upsert(docs)
    parsed = parse_filter(flt)
    expr = ms.compile_filter(parsed)
    found = {r["id"] for r in lite.query(collection, filter=expr, output_fields=["id"])}
    expected = {f"m{i}" for i, m in enumerate(METADATA) if matches(parsed, m)}
    assert found == expected, expr


@pytest.mark.parametrize("flt", RANGE_OVER_LISTS, ids=[str(f) for f in RANGE_OVER_LISTS])
def test_range_over_list_values_matches_scalars_only(lite, flt):
    """The documented limitation, pinned: a Milvus that learns it should fail this test."""
    collection = "filters"
    if not lite.has_collection(collection):
        con = _connector(lite, collection, IndexSpec(dense_dim=DIM, sparse=False, colbert=False))
        con.upsert([(Document(f"m{i}", "t", m), _emb(i)) for i, m in enumerate(METADATA)])
    parsed = parse_filter(flt)
    found = {
        r["id"]
        for r in lite.query(collection, filter=ms.compile_filter(parsed), output_fields=["id"])
    }
    scalar_only = {
        f"m{i}"
        for i, m in enumerate(METADATA)
        if not isinstance(m.get("years"), list) and matches(parsed, m)
    }
    with_lists = {f"m{i}" for i, m in enumerate(METADATA) if matches(parsed, m)}
    assert scalar_only != with_lists, "test setup: the filter must match a list value"
    assert found == scalar_only


def test_float16_rows_search_close_to_float32(lite, name):
    spec = IndexSpec(dense_dim=DIM, colbert_dim=DIM, colbert_precision="float16")
    con = _connector(lite, name, spec)
    docs = _docs(6)
    con.upsert(docs)
    query = _emb(42)
    hits = con.search(query, 3, mode="colbert")
    expected = sorted(
        ((oracles.maxsim(query.colbert, e.colbert), d.id) for d, e in docs), reverse=True
    )
    assert [h.id for h in hits] == [i for _, i in expected[:3]]
    assert hits[0].score == pytest.approx(expected[0][0], abs=1e-2)


def test_url_forms(tmp_path: Path):
    with pytest.raises(InputError, match="not a Milvus URL"):
        cm.MilvusEngine.open("milvus+ftp://host", collection="c", spec=SPEC, default_spec=SPEC)
    with pytest.raises(InputError, match="unknown database target"):
        connect("milvus+ftp://host", collection="c", spec=SPEC)
    with pytest.raises(InputError, match=r"\.db"):
        connect("milvus-lite:/tmp/file.sqlite", collection="c", spec=SPEC)
    path = tmp_path / "url.db"
    with connect(f"milvus-lite:{path}", collection="c", spec=SPEC) as con:
        assert con.capabilities.lite and con.count() == 0
    with connect(str(path), collection="c", spec=SPEC) as con:  # a bare PATH.db
        assert con.count() == 0


def test_missing_pymilvus_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'm3vdb\[milvus\]'"):
        connect("milvus://localhost:19530", collection="c", spec=SPEC)


def test_connector_satisfies_the_protocol(lite, name):
    from m3vdb.connectors.base import Connector

    assert isinstance(_connector(lite, name), Connector)


def test_no_warning_on_clean_writes(lite, name):
    con = _connector(lite, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        con.upsert(_docs(2))
        con.upsert(_docs(2, seed=1))


def test_versions_order_in_time_above_untimed_versions():
    versions = [colbert.new_version() for _ in range(1000)]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert all(len(v) <= ms.VERSION_MAX_BYTES for v in versions)
    legacy = ["0" * 32, "f" * 32]  # uuid4 hex, what versions were before they were timed
    assert all(old < versions[0] for old in legacy)


def test_a_collection_from_before_the_ownership_record_still_works(lite, name):
    """Collections written before m3vdb recorded ownership (no descriptions, uuid-hex
    versions): readable, the next write removes the old rows, drop() drops the companion."""
    companion = ms.companion_name(name)
    for collection, fields, indexes in (
        (
            companion,
            ms.companion_fields(SPEC),
            ms.companion_indexes(SPEC, ms.MilvusCapabilities.for_lite()),
        ),
        (
            name,
            ms.main_fields(SPEC, "companion"),
            ms.main_indexes(SPEC, "companion", ms.MilvusCapabilities.for_lite()),
        ),
    ):
        lite.create_collection(
            collection,
            schema=ms.build_schema(fields),
            index_params=ms.build_index_params(indexes),
            consistency_level="Strong",
        )
    (doc, emb), version = _docs(1)[0], "a" * 32
    lite.insert(companion, ms.colbert_rows(doc, emb, SPEC, version, 0))
    lite.insert(name, [ms.main_row(doc, emb, SPEC, "companion", version)])
    con = _connector(lite, name)
    np.testing.assert_allclose(con.get_embeddings(["d0"])["d0"].colbert, emb.colbert)
    new = _emb(9, rows=2)
    con.upsert([(doc, new)])
    assert _row_count(lite, companion) == 2
    np.testing.assert_allclose(con.get_embeddings(["d0"])["d0"].colbert, new.colbert)
    con.drop()
    assert not lite.has_collection(name) and not lite.has_collection(companion)


def test_colbert_rows_are_read_in_bounded_queries(lite, name, monkeypatch):
    """Milvus Lite answers a query in a time that grows with the square of its reply (a
    candidate set's rows in one query: no answer in minutes), so the companion's vectors are read
    by primary key, a page of ``FETCH_BYTES`` per query. Here a page holds 3 rows: every row
    must still arrive once (a row a retried insert stored twice too), and the scores must be the
    exact MaxSim and those of one unbounded read.

    Troubleshooting: a reply of more rows than a page means a vector read is not paged; a
    missing or changed score, that pages lose or repeat rows (see ``CompanionColbert._arrays``).
    """
    companion = ms.companion_name(name)
    con = _connector(lite, name)
    docs = [(Document(f"d{i}", f"t{i}"), _emb(i, rows=1 + i)) for i in range(6)]
    con.upsert(docs)
    # a retried insert stores a row twice under the same key: it must be read once
    twice = lite.query(companion, filter='doc_id == "d5" and row == 4', output_fields=["*"])
    assert len(twice) == 1
    lite.insert(companion, twice)
    replies: list[int] = []
    real_query = lite.query

    def counting_query(collection_name: str, **kwargs: Any) -> Any:
        rows = real_query(collection_name, **kwargs)
        if ms.COLBERT_SUBFIELD in kwargs.get("output_fields", []):
            replies.append(len(rows))
        return rows

    monkeypatch.setattr(lite, "query", counting_query)
    query = _emb(99)
    modes = ("colbert", "hybrid")
    whole = {mode: con.search(query, 6, mode=mode) for mode in modes}
    assert len(replies) == 2 and min(replies) >= 21  # the default page holds all 21 rows

    replies.clear()
    monkeypatch.setattr(colbert, "FETCH_BYTES", 3 * SPEC.colbert_bytes_per_token)
    stored = con.get_embeddings([d.id for d, _ in docs])
    for d, e in docs:
        np.testing.assert_array_equal(stored[d.id].colbert, e.colbert.astype(np.float32))
    expected = {d.id: oracles.maxsim(query.colbert, e.colbert) for d, e in docs}
    for mode in modes:
        bounded = con.search(query, 6, mode=mode)
        assert [(h.id, h.score) for h in bounded] == [(h.id, h.score) for h in whole[mode]]
        assert sorted(h.id for h in bounded) == sorted(expected)
        for h in bounded:
            assert h.signal_scores["colbert"] == pytest.approx(expected[h.id], abs=1e-5)
    # 7 pages of 3 keys per read (a key stored twice may come back twice; Lite 2.5 sends it once)
    assert len(replies) == 3 * 7 and max(replies) <= 3 + 1
