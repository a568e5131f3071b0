"""Milvus's ColBERT layouts, one strategy class each (chosen once, when the connector opens):

- :class:`NoColbert`: the collection stores no ColBERT rows.
- :class:`StructColbert`: an Array of Structs field in the main entity (Milvus >= 2.6.4): a
  document and its rows are one entity, written atomically; MaxSim runs in Milvus
  (``MAX_SIM_IP`` on ``colbert[vec]``).
- :class:`CompanionColbert`: one entity per row in a companion collection ``C__colbert``
  (Milvus Lite and older servers, or float16 rows); MaxSim over the candidates' rows in numpy.

Each implements :class:`ColbertStrategy`: its storage (create, validate, load, drop), writing a
batch, deleting ids, reading ColBERT rows, reranking fused candidates and ``mode="colbert"``.

The companion layout's write protocol keeps every document whole and readers safe, whatever
fails or runs concurrently:

1. The batch's rows are inserted under a fresh ``version``; versions order in time
   (:func:`new_version`), and no main entity names this one yet, so the rows are invisible.
2. The main entities are upserted naming that version.
3. Settling: the writer reads which version each main entity names now. Where it names ours,
   the writer checks our rows are all there (restoring any that a concurrent writer deleted)
   and deletes rows of OLDER versions only; where an older concurrent writer's main upsert
   landed after ours, ours is newer: the writer restores its rows and names its version
   again; where a newer writer's version (or no entity: deleted meanwhile) is named, our rows
   are garbage and are deleted. It repeats until no main entity names an older version. A
   writer never deletes rows of a version newer than its own, nor of the version an entity
   names, so two writers of the same ids settle on the newer one, whole.

Readers use only rows of the version the main entity names, and check every filter on the main
entity: the companion's copy of the metadata only narrows ColBERT candidate generation, so a
stale row (left by a writer killed between the steps, or a failed delete) can never make a
document match a filter it does not match now. A failure (or an interrupt) anywhere leaves at
most invisible rows, which the next write of the document deletes; they are logged at debug
level, not shown to the user.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

import numpy as np

from m3vdb.connectors.common import batched
from m3vdb.connectors.milvus.store import IDS_PER_QUERY, Store
from m3vdb.errors import BackendError, InputError, M3VDBError
from m3vdb.schemas import milvus as ms
from m3vdb.schemas.data import Document, Hit, M3Embedding
from m3vdb.schemas.milvus import ColbertLayout, FieldDef, IndexDef
from m3vdb.schemas.scoring import maxsim

log = logging.getLogger(__name__)

# Bytes of ColBERT rows per insert request. Measured on Milvus Lite 2.5.1 (bench/README.md):
# requests of 128-256 rows of 1,024 floats (0.5-1 MiB) insert 3-5x more rows per second than
# requests of 1,024 rows (4 MiB), and 8 MiB falls off a cliff (gRPC "too_many_pings" resets).
INSERT_BYTES = 2**20
# Bytes of ColBERT vectors per query reply (rows read by primary key). Measured on Milvus Lite
# 2.5.1, 1,024-d float32: a query's time grows with the square of its reply, with a cliff near
# 7 MB (1,024 rows: 0.4 s; 1,700: 1.0 s; 1,900: 20 s; an offset counts towards the size), while
# pages of 128 rows (512 KiB) read about 13,000 rows per second.
FETCH_BYTES = 2**19
#: Rounds of the companion layout's settling step before it leaves the rest to the other writer.
SETTLE_ROUNDS = 8

Pairs = Sequence[tuple[Document, M3Embedding]]


class ColbertStrategy(ABC):
    """How one ColBERT layout stores and reads ColBERT rows; the connector delegates to it.

    A subclass sets ``name`` and implements :meth:`write`, :meth:`rerank` and :meth:`search`;
    the other methods have the behaviour of a layout with nothing outside the main collection.

    Args:
        store: the opened collection.
        owned: the companion collection the main collection records as its own (created with
            it), which :meth:`drop` drops; None when it owns none.
    """

    name: ClassVar[ColbertLayout]

    def __init__(self, store: Store, owned: str | None = None) -> None:
        self._store = store
        self._spec = store.spec
        self._owned = owned

    # -- storage --------------------------------------------------------------------

    def main_fields(self) -> list[FieldDef]:
        return ms.main_fields(self._spec, self.name)

    def main_indexes(self) -> list[IndexDef]:
        return ms.main_indexes(self._spec, self.name, self._store.caps)

    def main_description(self) -> str:
        """What the main collection records about its layout (and what it owns)."""
        return ms.main_description(self.name, self._store.collection)

    def create_storage(self) -> None:
        """Creates what the layout keeps outside the main collection (before the main one)."""
        return None  # nothing outside the main collection

    def remove_storage(self) -> None:
        """Undoes :meth:`create_storage` when creating the main collection failed."""
        return None  # nothing outside the main collection

    def storage_problems(self) -> list[str]:
        """How the storage outside the main collection differs from what the spec needs."""
        return []

    def load_storage(self) -> None:
        """Loads the storage outside the main collection."""
        return None  # nothing outside the main collection

    def drop(self) -> None:
        """Drops what the main collection owns besides itself: only what m3vdb created with it
        (a user's own collection named like a companion is never touched)."""
        if self._owned is not None:
            self._store.drop(self._owned)

    # -- reads ----------------------------------------------------------------------

    def read_fields(self) -> list[str]:
        """Main-collection fields every read returns (what hits and reranking need)."""
        names = self._spec.fields
        return [names.text, names.metadata]

    def embedding_fields(self) -> list[str]:
        """Extra main-collection fields :meth:`colbert_arrays` needs."""
        return []

    def colbert_arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Doc id -> its stored ColBERT rows, for main rows read with :meth:`read_fields` and
        :meth:`embedding_fields`."""
        return {}

    # -- writes ---------------------------------------------------------------------

    def write(self, pairs: Pairs, fde: np.ndarray | None = None) -> None:
        """Writes one validated batch: main entities (with their MUVERA encodings ``fde``, row
        i for pair i, when the spec stores them) and ColBERT rows, no document half-written.
        Here: the main entities, which hold everything (no rows, or rows in a struct field)."""
        self._upsert_main(
            [
                ms.main_row(d, e, self._spec, self.name, fde=_row(fde, i))
                for i, (d, e) in enumerate(pairs)
            ]
        )

    def delete(self, ids: Sequence[str]) -> None:
        """Deletes the ColBERT rows of ``ids`` (after their main entities were deleted)."""
        return None  # nothing outside the main collection

    def _upsert_main(self, rows: list[dict[str, Any]]) -> None:
        c, collection = self._store.client, self._store.collection
        self._store.call("upsert", lambda: c.upsert(collection, rows))

    # -- search ---------------------------------------------------------------------

    @abstractmethod
    def rerank(
        self,
        q_rows: np.ndarray,
        fused: list[Mapping[str, Any]],
        k: int,
        expr: str,
        first: str = "fusion",
    ) -> list[Hit]:
        """The top ``k`` of the candidates (search results carrying :meth:`read_fields`) by
        ColBERT MaxSim, each keeping its first-stage score under ``first`` (``fusion`` for
        hybrid, ``fde`` for the MUVERA stage of ``mode="colbert"``)."""

    @abstractmethod
    def search(self, q_rows: np.ndarray, k: int, expr: str, candidates: int) -> list[Hit]:
        """``mode="colbert"``: the top ``k`` documents matching ``expr`` by MaxSim."""


class NoColbert(ColbertStrategy):
    """The collection stores no ColBERT rows (the plan refuses ColBERT queries before here)."""

    name = "none"

    def rerank(
        self,
        q_rows: np.ndarray,
        fused: list[Mapping[str, Any]],
        k: int,
        expr: str,
        first: str = "fusion",
    ) -> list[Hit]:
        raise self._no_colbert()

    def search(self, q_rows: np.ndarray, k: int, expr: str, candidates: int) -> list[Hit]:
        raise self._no_colbert()

    def _no_colbert(self) -> InputError:
        return InputError(
            f"collection {self._store.collection!r} stores no ColBERT vectors; search with "
            "mode='dense', 'sparse' or 'hybrid' without rerank"
        )


class StructColbert(ColbertStrategy):
    """Rows in an Array of Structs field of the main entity, MaxSim in Milvus."""

    name = "struct"

    def embedding_fields(self) -> list[str]:
        return [self._spec.fields.colbert]

    def colbert_arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        names = self._spec.fields
        return {
            str(row[names.id]): np.stack(
                [ms.vector_from_milvus(s[ms.COLBERT_SUBFIELD]) for s in row[names.colbert]]
            )
            for row in rows
            if row.get(names.colbert)
        }

    def rerank(
        self,
        q_rows: np.ndarray,
        fused: list[Mapping[str, Any]],
        k: int,
        expr: str,
        first: str = "fusion",
    ) -> list[Hit]:
        if not fused:
            return []
        fusion = {str(h["id"]): float(h["distance"]) for h in fused}
        ids_expr = ms.ids_expression(self._spec.fields.id, list(fusion))
        hits = self.search(q_rows, k, ms.and_expressions(ids_expr, expr), k)
        return [
            Hit(h.id, h.score, h.text, h.metadata, {first: fusion[h.id], **h.signal_scores})
            for h in hits
        ]

    def search(self, q_rows: np.ndarray, k: int, expr: str, candidates: int) -> list[Hit]:
        from pymilvus.client.embedding_list import EmbeddingList

        store = self._store
        c = store.client
        field = f"{self._spec.fields.colbert}[{ms.COLBERT_SUBFIELD}]"
        result = store.call(
            "ColBERT search",
            lambda: c.search(
                store.collection,
                data=[EmbeddingList(list(q_rows))],
                anns_field=field,
                filter=expr,
                limit=k,
                output_fields=self.read_fields(),
                search_params={"metric_type": "MAX_SIM_IP"},
            ),
        )
        return [
            store.hit(h, float(h["distance"]), {"colbert": float(h["distance"])}) for h in result[0]
        ]


_version_lock = threading.Lock()
_last_version_ns = 0


def new_version() -> str:
    """A fresh row-set version: ``t<20-digit ns>-<uuid4 hex>``. Versions compare (as strings) in
    the order they were made (strictly, within a process); every version written before
    versions ordered in time (bare uuid hex) compares below all of them, being below ``"t"``."""
    global _last_version_ns
    with _version_lock:
        ns = max(time.time_ns(), _last_version_ns + 1)
        _last_version_ns = ns
    return f"t{ns:020d}-{uuid.uuid4().hex}"


class CompanionColbert(ColbertStrategy):
    """One entity per ColBERT row in the companion collection; see the module docstring for
    the write protocol that keeps documents whole and readers safe."""

    name = "companion"

    def __init__(self, store: Store, owned: str | None = None) -> None:
        super().__init__(store, owned)
        self._companion = ms.companion_name(store.collection)

    # -- storage --------------------------------------------------------------------

    def create_storage(self) -> None:
        store, name = self._store, self._companion
        if store.exists(name):
            if not ms.is_companion_of(store.describe(name), store.collection):
                raise InputError(
                    f"collection {name!r} exists but is not m3vdb's ColBERT rows of "
                    f"{store.collection!r}, which m3vdb would keep there (Milvus Lite and "
                    "servers before 2.6.4 store ColBERT rows beside the collection): choose "
                    f"another collection name, or drop {name!r} if nothing needs it"
                )
            # Ours, left by an interrupted create: no main entity names any of its rows.
            store.drop(name)
        store.create(
            name,
            ms.companion_fields(self._spec),
            ms.companion_indexes(self._spec, store.caps),
            ms.companion_description(store.collection),
        )
        self._owned = name

    def remove_storage(self) -> None:
        self._store.drop(self._companion)
        self._owned = None

    def storage_problems(self) -> list[str]:
        store, name = self._store, self._companion
        if not store.exists(name):
            return [f"companion collection {name!r} is missing"]
        problems = store.problems(
            name,
            store.describe(name),
            ms.companion_fields(self._spec),
            ms.companion_indexes(self._spec, store.caps),
        )
        return [f"{name}: {p}" for p in problems]

    def load_storage(self) -> None:
        self._store.load(self._companion)

    # -- reads ----------------------------------------------------------------------

    def read_fields(self) -> list[str]:
        return [*super().read_fields(), ms.version_field(self._spec)]

    def colbert_arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        names = self._spec.fields
        version = ms.version_field(self._spec)
        return self._arrays({str(r[names.id]): str(r[version]) for r in rows})

    def _arrays(self, versions: Mapping[str, str]) -> dict[str, np.ndarray]:
        """Doc id -> its ColBERT rows of the given version: which rows exist first (their keys,
        no vectors), then the vectors by key, a page of :data:`FETCH_BYTES` per query."""
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for page in batched(self._row_keys(versions), self._rows_per_fetch()):
            for row in self._fetch_rows(page):
                grouped.setdefault(str(row["doc_id"]), []).append(row)
        return {doc_id: ms.colbert_from_rows(rows) for doc_id, rows in grouped.items()}

    def _row_keys(self, versions: Mapping[str, str]) -> list[str]:
        """The primary keys of the documents' rows of the given version. One query per group of
        documents whose rows fit Milvus's 16384-entity query limit (one for typical candidate
        sets); a retried insert's duplicate rows share a key, listed once."""
        per_query = max(1, ms.QUERY_LIMIT // self._spec.max_colbert_rows)
        keys: dict[str, None] = {}
        for chunk in batched(list(versions), per_query):
            for row in self._query_rows(chunk, sorted({versions[i] for i in chunk})):
                if versions.get(row["doc_id"]) == row["version"]:
                    keys[str(row["pk"])] = None
        return list(keys)

    def _rows_per_fetch(self) -> int:
        # at most IDS_PER_QUERY keys: Milvus parses long expressions slowly
        rows = int(FETCH_BYTES // self._spec.colbert_bytes_per_token)
        return max(1, min(IDS_PER_QUERY, rows))

    def _fetch_rows(self, keys: list[str]) -> list[Mapping[str, Any]]:
        """The rows with these primary keys, with their vectors (a key stored twice by a retried
        insert returns two rows, which :func:`ms.colbert_from_rows` keeps once)."""
        c = self._store.client
        fields = ["doc_id", "row", ms.COLBERT_SUBFIELD]
        return list(
            self._store.call(
                "query of ColBERT rows",
                partial(
                    c.query,
                    self._companion,
                    filter=ms.ids_expression("pk", keys),
                    output_fields=fields,
                    limit=ms.QUERY_LIMIT,
                    # float32 vectors as numpy views of one array, not a Python list per row
                    # (older pymilvus ignores the option; vector_from_milvus takes both)
                    strict_float32=True,
                ),
            )
        )

    def _query_rows(self, ids: list[str], versions: list[str]) -> list[Mapping[str, Any]]:
        """The keys of the rows of ``ids`` in any of ``versions`` (no vectors: a cheap reply)."""
        c = self._store.client
        expr = ms.and_expressions(
            ms.ids_expression("doc_id", ids), ms.ids_expression("version", versions)
        )
        fields = ["pk", "doc_id", "version"]
        rows = self._store.call(
            "query of ColBERT row keys",
            lambda: c.query(
                self._companion, filter=expr, output_fields=fields, limit=ms.QUERY_LIMIT
            ),
        )
        if len(rows) >= ms.QUERY_LIMIT:
            # Leftover rows of older versions filled the page: split until each part fits.
            if len(ids) == 1:
                raise BackendError(
                    f"document {ids[0]!r} has more than {ms.QUERY_LIMIT} ColBERT rows stored in "
                    f"{self._companion!r}; upsert it again to remove rows of old versions"
                )
            half = len(ids) // 2
            return self._query_rows(ids[:half], versions) + self._query_rows(ids[half:], versions)
        return list(rows)

    # -- writes ---------------------------------------------------------------------

    def write(self, pairs: Pairs, fde: np.ndarray | None = None) -> None:
        spec, version = self._spec, new_version()
        rows = {d.id: ms.colbert_rows(d, e, spec, version, i) for i, (d, e) in enumerate(pairs)}
        ids = list(rows)
        try:
            self._insert_rows(row for doc_rows in rows.values() for row in doc_rows)
        except Exception:
            # No main entity names this version yet: its rows go. (On an interrupt there is no
            # further call: the rows are invisible and the next write of these ids deletes them.)
            self._discard(version, ids, lambda _: True)
            raise
        mains = [
            ms.main_row(d, e, spec, self.name, version, _row(fde, i))
            for i, (d, e) in enumerate(pairs)
        ]
        try:
            self._upsert_main(mains)
        except Exception:
            # The upsert may have been applied in part (a timeout): rows of a document whose
            # main entity names this version stay, the others go.
            named = self._named_or_none(ids)
            if named is not None:
                self._discard(version, ids, lambda i: named.get(i) != version)
            raise
        try:
            self._settle(version, rows, {m[spec.fields.id]: m for m in mains})
        except M3VDBError as exc:
            # The documents are written: every main entity names a version whose rows are all
            # there; what is left is rows no reader uses, deleted by the next write.
            log.debug("old ColBERT rows were left in %r: %s", self._companion, exc)

    def _insert_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        # insert, not upsert: primary keys are new (a fresh version), and Milvus's upsert
        # looks every key up first. A retried request may store a row twice; readers keep
        # one of each row number.
        c = self._store.client
        per_request = max(1, INSERT_BYTES // (4 * self._spec.colbert_dim))
        for chunk in batched(rows, per_request):
            self._store.call("insert of ColBERT rows", partial(c.insert, self._companion, chunk))

    def _named_versions(self, ids: Sequence[str]) -> dict[str, str]:
        """Doc id -> the version its main entity names now (ids without one are left out)."""
        id_field, version = self._spec.fields.id, ms.version_field(self._spec)
        rows = self._store.query_ids(self._store.collection, id_field, ids, [id_field, version])
        return {str(r[id_field]): str(r[version]) for r in rows}

    def _named_or_none(self, ids: Sequence[str]) -> dict[str, str] | None:
        try:
            return self._named_versions(ids)
        except M3VDBError as exc:
            log.debug("could not read which ColBERT versions are named: %s", exc)
            return None

    def _discard(self, version: str, ids: Sequence[str], drop: Callable[[str], bool]) -> None:
        """Deletes this version's rows of the ids ``drop`` selects; a failure leaves them (no
        main entity names them: invisible) and is logged at debug level."""
        gone = [i for i in ids if drop(i)]
        try:
            for chunk in batched(gone, IDS_PER_QUERY):
                self._delete_rows(
                    ms.and_expressions(
                        ms.ids_expression("doc_id", chunk), f"version == {ms.json_string(version)}"
                    )
                )
        except M3VDBError as exc:
            log.debug(
                "rows of a failed write were left in %r (invisible: no document names version "
                "%s): %s",
                self._companion,
                version,
                exc,
            )

    def _delete_rows(self, expr: str) -> None:
        c = self._store.client
        self._store.call("delete of ColBERT rows", lambda: c.delete(self._companion, filter=expr))

    def _settle(
        self,
        version: str,
        rows: Mapping[str, list[dict[str, Any]]],
        mains: Mapping[str, dict[str, Any]],
    ) -> None:
        """Step 3 of the write protocol (module docstring)."""
        ids = list(rows)
        literal = ms.json_string(version)
        for _round in range(SETTLE_ROUNDS):
            named = self._named_versions(ids)
            behind = [i for i in ids if i in named and named[i] < version]
            ours = [i for i in ids if named.get(i) == version] + behind
            self._restore(version, ours, rows)
            if behind:
                # An older writer's main upsert landed after ours: ours is newer.
                self._upsert_main([mains[i] for i in behind])
            others = [i for i in ids if i not in ours]
            for chunk in batched(ours, IDS_PER_QUERY):
                ids_expr = ms.ids_expression("doc_id", chunk)
                self._delete_rows(ms.and_expressions(ids_expr, f"version < {literal}"))
            for chunk in batched(others, IDS_PER_QUERY):
                ids_expr = ms.ids_expression("doc_id", chunk)
                self._delete_rows(ms.and_expressions(ids_expr, f"version == {literal}"))
            named = self._named_versions(ids)
            if not any(i in named and named[i] < version for i in ids):
                return
        # Another writer is still at work on these ids; it settles them on its own version.
        log.debug(
            "ColBERT versions of %d documents still moving after %d rounds", len(ids), SETTLE_ROUNDS
        )

    def _restore(
        self, version: str, ids: Sequence[str], rows: Mapping[str, list[dict[str, Any]]]
    ) -> None:
        """Inserts again the rows of ``ids`` that a concurrent writer deleted (rare: one count
        query when all are there)."""
        if not ids:
            return
        expected = sum(len(rows[i]) for i in ids)
        version_expr = f"version == {ms.json_string(version)}"
        if self._count(ids, version_expr) >= expected:
            return
        c, present = self._store.client, set()
        for chunk in batched(list(ids), max(1, ms.QUERY_LIMIT // self._spec.max_colbert_rows)):
            expr = ms.and_expressions(ms.ids_expression("doc_id", chunk), version_expr)
            found = self._store.call(
                "query of ColBERT rows",
                partial(
                    c.query,
                    self._companion,
                    filter=expr,
                    output_fields=["doc_id", "row"],
                    limit=ms.QUERY_LIMIT,
                ),
            )
            present |= {(str(r["doc_id"]), int(r["row"])) for r in found}
        self._insert_rows(
            row for i in ids for row in rows[i] if (row["doc_id"], row["row"]) not in present
        )

    def _count(self, ids: Sequence[str], expr: str) -> int:
        c, total = self._store.client, 0
        for chunk in batched(list(ids), IDS_PER_QUERY):
            where = ms.and_expressions(ms.ids_expression("doc_id", chunk), expr)
            result = self._store.call(
                "count of ColBERT rows",
                partial(c.query, self._companion, filter=where, output_fields=["count(*)"]),
            )
            total += int(result[0]["count(*)"])
        return total

    def delete(self, ids: Sequence[str]) -> None:
        self._delete_rows(ms.ids_expression("doc_id", list(ids)))

    # -- search ---------------------------------------------------------------------

    def rerank(
        self,
        q_rows: np.ndarray,
        fused: list[Mapping[str, Any]],
        k: int,
        expr: str,
        first: str = "fusion",
    ) -> list[Hit]:
        # The fused candidates come from the main collection under ``expr``: their metadata
        # and version are current.
        if not fused:
            return []
        fusion = {str(h["id"]): float(h["distance"]) for h in fused}
        version = ms.version_field(self._spec)
        arrays = self._arrays({str(h["id"]): (h.get("entity") or {})[version] for h in fused})
        scored = []
        for h in fused:
            doc_id = str(h["id"])
            score = maxsim(q_rows, self._rows_of(doc_id, arrays))
            scored.append(self._store.hit(h, score, {first: fusion[doc_id], "colbert": score}))
        scored.sort(key=lambda hit: (-hit.score, hit.id))
        return scored[:k]

    def _rows_of(self, doc_id: str, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        if doc_id not in arrays:
            raise BackendError(
                f"document {doc_id!r} has no ColBERT rows of its version in "
                f"{self._companion!r} (written by another tool?); upsert it again"
            )
        return arrays[doc_id]

    def search(self, q_rows: np.ndarray, k: int, expr: str, candidates: int) -> list[Hit]:
        store = self._store
        c = store.client
        # Every query row looks for its nearest token rows; their documents are the candidates.
        # The filter on the rows' copy of the metadata only narrows the candidates: a row may
        # be stale (an older version's), so the main entities are filtered again below.
        per_row = min(ms.QUERY_LIMIT, max(8 * candidates, 256))
        data = q_rows.astype(np.float16) if self._spec.colbert_precision == "float16" else q_rows
        result = store.call(
            "ColBERT candidate search",
            lambda: c.search(
                self._companion,
                data=list(data),
                anns_field=ms.COLBERT_SUBFIELD,
                filter=expr,
                limit=per_row,
                output_fields=["doc_id"],
                search_params={"metric_type": "IP"},
            ),
        )
        doc_ids = list(dict.fromkeys(str(h["entity"]["doc_id"]) for hits in result for h in hits))
        if not doc_ids:
            return []
        names = self._spec.fields
        # The main entities that exist and match the filter NOW, with the version they name.
        mains = store.query_ids(
            store.collection, names.id, doc_ids, [names.id, *self.read_fields()], expr
        )
        arrays = self.colbert_arrays(mains)
        hits = []
        for row in mains:
            doc_id = str(row[names.id])
            if doc_id in arrays:
                score = maxsim(q_rows, arrays[doc_id])
                hits.append(store.hit({"id": doc_id, "entity": row}, score, {"colbert": score}))
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[:k]


def _row(fde: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if fde is None else fde[i]


#: The strategy class of each layout.
STRATEGIES: dict[ColbertLayout, type[ColbertStrategy]] = {
    "none": NoColbert,
    "struct": StructColbert,
    "companion": CompanionColbert,
}
