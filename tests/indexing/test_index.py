"""``m3vdb.index``, the indexing library every surface calls, on each embedded engine with the
tiny checkpoint: windows for a long document, resume by content, replace-as-whole, prune, and
the errors that stop a run before anything is written.

Troubleshooting: each case writes into its own temporary folder; a Milvus Lite case needs
``milvus-lite`` (``pip install 'm3vdb[milvus]'``), an edge case ``qdrant-edge-py``.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

import m3vdb
from m3vdb import Chunking, Document, IndexReport, InputError
from m3vdb.encoder import M3Encoder

REPO = Path(__file__).resolve().parents[2]
WORDS = (REPO / "tests" / "data" / "multilingual.txt").read_text(encoding="utf-8").split()

TARGETS = {
    "milvus-lite": ("milvus_lite", lambda tmp: f"milvus-lite:{tmp / 'index.db'}"),
    "qdrant-local": ("qdrant_client", lambda tmp: f"qdrant+local:{tmp / 'qdrant'}"),
    "qdrant-edge": ("qdrant_edge", lambda tmp: f"qdrant+edge:{tmp / 'edge'}"),
}


def _target(name: str, tmp_path: Path) -> str:
    package, make = TARGETS[name]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (pip install -e '.[test]')")
    return make(tmp_path)


def _long_text(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _docs(changed: bool = False) -> list[Document]:
    return [
        Document("a", "BGE-M3 gives dense, sparse and ColBERT vectors.", {"lang": "en"}),
        Document("b", "Milvus, Qdrant and Elasticsearch store them natively.", {"lang": "en"}),
        Document("c", "El río cruza el valle." + (" Editado." if changed else ""), {"lang": "es"}),
        Document("long", _long_text(1500), {"lang": "mixed"}),
    ]


def _refuse_to_load() -> M3Encoder:
    raise AssertionError("nothing needed encoding, yet the encoder was loaded")


@pytest.mark.parametrize("engine", sorted(TARGETS))
def test_index_windows_resume_replace_and_search(
    engine: str, tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    """One document per entry, a long one as windows linked to it; the same call again
    encodes nothing (the loader is never called); an edited document is replaced as a whole;
    the windows are found by ``parent_id`` and searchable.

    Troubleshooting: ``split`` 0 means the long text fits one entry (the tiny tokenizer
    changed): make it longer."""
    target = _target(engine, tmp_path)
    first = m3vdb.index(_docs(), target, collection="docs", encoder=tiny_encoder)
    assert (first.seen, first.indexed, first.split, first.resumed) == (4, 4, 1, 0)
    windows = first.entries - 3
    assert windows >= 2

    again = m3vdb.index(_docs(), target, collection="docs", encoder=_refuse_to_load)
    assert (again.indexed, again.resumed, again.entries) == (0, 4, 0)

    edited = m3vdb.index(_docs(changed=True), target, collection="docs", encoder=tiny_encoder)
    assert (edited.indexed, edited.replaced, edited.resumed) == (1, 1, 3)

    with m3vdb.connect(target, collection="docs", encoder=tiny_encoder) as store:
        assert store.count() == 3 + windows
        (c,) = store.get(["c"])
        assert c.text.endswith("Editado.") and c.metadata["content_hash"]
        parts = sorted(store.scan({"parent_id": "long"}), key=lambda d: d.metadata["chunk"])
        assert [d.id for d in parts] == [f"long#{n}" for n in range(windows)]
        assert {d.metadata["chunks"] for d in parts} == {windows}
        hits = store.search("dense sparse ColBERT vectors", 3, mode="dense")
        assert hits and hits[0].id == "a"


def test_index_folder_then_prune_what_is_gone(tmp_path: Path, tiny_encoder: M3Encoder) -> None:
    """Paths: every file becomes a document with its provenance; after a file is removed,
    ``prune=True`` deletes its document and keeps the rest."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Vectors\nDense and sparse.", encoding="utf-8")
    (folder / "b.txt").write_text("ColBERT reranks by MaxSim.", encoding="utf-8")
    target = _target("qdrant-edge", tmp_path)
    report = m3vdb.index(folder, target, collection="notes", encoder=tiny_encoder)
    assert report.indexed == 2
    (folder / "b.txt").unlink()
    pruned = m3vdb.index([folder], target, collection="notes", encoder=_refuse_to_load, prune=True)
    assert (pruned.resumed, pruned.pruned) == (1, 1)
    with m3vdb.connect(target, collection="notes", encoder=tiny_encoder) as store:
        (left,) = list(store.scan())
        assert left.id.endswith("notes/a.md")
        assert left.metadata["source_file"] == left.id


def test_index_into_an_open_collection_leaves_it_open(
    tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    """A collection already open (what the framework stores hold) is written to, not closed."""
    target = _target("qdrant-local", tmp_path)
    with m3vdb.connect(target, collection="open", encoder=tiny_encoder) as store:
        report = m3vdb.index(_docs()[:2], store, encoder=tiny_encoder)
        assert report.indexed == 2
        assert store.count() == 2  # still open


def test_no_chunking_refuses_a_long_file_before_anything_is_written(
    tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "short.txt").write_text("short text", encoding="utf-8")
    (folder / "zlong.txt").write_text(_long_text(1500), encoding="utf-8")
    target = _target("qdrant-local", tmp_path)
    with pytest.raises(InputError, match="zlong.txt.*tokens"):
        m3vdb.index(folder, target, collection="strict", encoder=tiny_encoder, chunking=None)
    with m3vdb.connect(target, collection="strict", encoder=tiny_encoder) as store:
        assert store.count() == 0


def test_a_report_passed_in_keeps_the_counts_after_an_error(
    tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    """The second batch fails validation; the first stays written and counted."""
    target = _target("qdrant-local", tmp_path)
    bad = Document("bad", "BGE-M3 gives dense vectors.", {"k": None})  # type: ignore[dict-item]
    docs = [Document("ok", "fine text", {}), bad]
    report = IndexReport()
    with pytest.raises(InputError, match="'bad'"):
        m3vdb.index(docs, target, collection="r", encoder=tiny_encoder, batch_size=1, report=report)
    assert (report.seen, report.indexed) == (2, 1)


@pytest.mark.parametrize(
    ("sources", "kwargs", "error", "message"),
    [
        ([Document("a", "x")], {"prune": True}, InputError, "directory"),
        ([Document("a", "x"), "notes/"], {}, TypeError, "not both"),
        ("no/such/folder", {}, InputError, "no such file"),
        ([Document("a", "x")], {"collection": ""}, InputError, "collection"),
        ([Document("a", "x")], {"encoder": None}, InputError, "no encoder"),
        (
            [Document("a", "x")],
            {"chunking": Chunking(window=2048, overlap=0, automatic=False)},
            InputError,
            "does not fit",
        ),
    ],
)
def test_bad_runs_are_refused_with_what_to_do(
    tmp_path: Path,
    tiny_encoder: M3Encoder,
    sources: object,
    kwargs: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    target = _target("qdrant-local", tmp_path)
    options: dict[str, object] = {"collection": "bad", "encoder": tiny_encoder, **kwargs}
    with pytest.raises(error, match=message):
        m3vdb.index(sources, target, **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- window ids


def test_an_id_that_is_another_files_window_id_is_refused_before_writing(
    tmp_path: Path, tiny_encoder: M3Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26 item 5: ``notes/a.md#0`` in a JSONL next to a long ``notes/a.md`` would be
    overwritten by (or overwrite) window 0 of it; refused at reading, naming both."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text(_long_text(1500), encoding="utf-8")
    line = '{"id": "notes/a.md#0", "text": "a document of its own"}\n'
    (tmp_path / "notes" / "more.jsonl").write_text(line, encoding="utf-8")
    target = _target("qdrant-local", tmp_path)
    with pytest.raises(InputError, match=r"'notes/a.md#0'.*more.jsonl:1.*'notes/a.md'"):
        m3vdb.index("notes", target, collection="w", encoder=tiny_encoder, batch_size=1)
    with m3vdb.connect(target, collection="w", encoder=tiny_encoder) as store:
        assert store.count() == 0


@pytest.mark.parametrize("engine", ["qdrant-edge", "milvus-lite"])
def test_window_ids_never_overwrite_another_document_across_runs(
    engine: str, tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    """A stored window is not overwritten by a document named like it, and a stored document
    is not overwritten by the windows of a long one; each refusal names both and writes
    nothing of its batch."""
    target = _target(engine, tmp_path)
    long_doc = Document("a", _long_text(1500), {})
    m3vdb.index([long_doc], target, collection="w", encoder=tiny_encoder)
    with m3vdb.connect(target, collection="w", encoder=tiny_encoder) as store:
        (window,) = store.get(["a#0"])
    with pytest.raises(InputError, match=r"document 'a#0' would overwrite window 'a#0' of"):
        m3vdb.index([Document("a#0", "mine", {})], target, collection="w", encoder=tiny_encoder)
    m3vdb.index([Document("b#1", "stored first", {})], target, collection="w", encoder=tiny_encoder)
    with pytest.raises(InputError, match=r"window 'b#1' of document 'b' would overwrite document"):
        m3vdb.index(
            [Document("b", _long_text(1500, seed=1), {})],
            target,
            collection="w",
            encoder=tiny_encoder,
        )
    with m3vdb.connect(target, collection="w", encoder=tiny_encoder) as store:
        assert store.get(["a#0"])[0].text == window.text
        assert store.get(["b#1"])[0].text == "stored first"
        assert not store.get(["b#0"])  # nothing of the refused batch was written


# --------------------------------------------------------------------------- size limit


def test_a_file_over_the_size_limit_is_refused_by_name_before_reading(
    tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    """Issue 26 item 6: a 200 MB sparse file next to a small one: refused from its size
    (nothing is read into memory), naming the file, the limit and how to raise it."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "small.txt").write_text("small text", encoding="utf-8")
    with (folder / "huge.txt").open("wb") as huge:
        huge.truncate(200 * 2**20)  # sparse: no disk used
    target = _target("qdrant-local", tmp_path)
    with pytest.raises(InputError, match=r"huge.txt: 200.0 MiB .* 10 MiB .*--max-file-size"):
        m3vdb.index(folder, target, collection="s", encoder=tiny_encoder)
    report = m3vdb.index(folder / "small.txt", target, collection="s", encoder=tiny_encoder)
    assert report.indexed == 1


def test_a_jsonl_line_over_the_limit_is_refused_without_holding_it(
    tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(
        '{"id": "1", "text": "short"}\n{"id": "2", "text": "' + "x" * 5000 + '"}\n',
        encoding="utf-8",
    )
    target = _target("qdrant-local", tmp_path)
    with pytest.raises(InputError, match=r"docs.jsonl:2: the line is more than"):
        m3vdb.index(path, target, collection="j", encoder=tiny_encoder, max_file_bytes=1000)


# --------------------------------------------------------------------------- grouped search


@pytest.mark.parametrize("engine", ["qdrant-edge", "milvus-lite"])
def test_grouped_search_returns_k_documents_each_by_its_best_window(
    engine: str, tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    """Two long documents have many windows each; ``group=True`` returns one hit per
    document (its best-ranked entry, as the ungrouped ranking says) and still k of them."""
    target = _target(engine, tmp_path)
    docs = [Document(f"long{i}", _long_text(1500, seed=i), {}) for i in range(2)]
    docs += [Document(f"short{i}", f"river valley note {i}", {}) for i in range(3)]
    m3vdb.index(docs, target, collection="g", encoder=tiny_encoder)
    with m3vdb.connect(target, collection="g", encoder=tiny_encoder) as store:
        every = store.search(WORDS[0], 200, mode="dense")
        grouped = store.search(WORDS[0], 4, mode="dense", group=True)
    parents = [h.metadata.get("parent_id", h.id) for h in grouped]
    assert len(grouped) == 4 and len(set(parents)) == 4
    first_of_each: dict[str, str] = {}
    for hit in every:
        first_of_each.setdefault(hit.metadata.get("parent_id", hit.id), hit.id)
    assert [h.id for h in grouped] == list(first_of_each.values())[:4]
    assert len(every) > 5  # windows: more entries than documents


def test_an_encoder_loader_creates_a_new_collection_at_the_models_dimensions(
    tmp_path: Path, tiny_encoder: M3Encoder
) -> None:
    """A function that loads the encoder: called once to learn a new collection's dimensions,
    never for an existing one with nothing to encode."""
    target = _target("qdrant-local", tmp_path)
    calls: list[int] = []

    def load() -> M3Encoder:
        calls.append(1)
        return tiny_encoder

    assert m3vdb.index(_docs()[:2], target, collection="l", encoder=load).indexed == 2
    assert calls == [1]
    assert m3vdb.index(_docs()[:2], target, collection="l", encoder=_refuse_to_load).resumed == 2
    (info,) = m3vdb.list_collections(target)
    assert info.spec is not None and info.spec.dense_dim == tiny_encoder.dense_dim
