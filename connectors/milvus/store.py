"""What the Milvus connector and its ColBERT layouts share: the client, reached only through the
connector's retried and translated calls, and the few collection-level operations both use
(create with indexes, validate, query by ids, build hits)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from m3vdb.connectors.common import batched
from m3vdb.schemas import milvus as ms
from m3vdb.schemas.data import Hit
from m3vdb.schemas.milvus import FieldDef, IndexDef, MilvusCapabilities
from m3vdb.schemas.spec import IndexSpec

T = TypeVar("T")

#: Ids per ``id in [...]`` expression (Milvus parses long expressions slowly).
IDS_PER_QUERY = 1000


@dataclass(frozen=True)
class Store:
    """One Milvus collection as the connector opened it.

    Attributes:
        client: the ``pymilvus.MilvusClient``.
        collection: the main collection's name.
        spec: what it stores.
        caps: what the server can do.
        call: the connector's ``_call``: runs one client call with retries, translating errors.
    """

    client: Any
    collection: str
    spec: IndexSpec
    caps: MilvusCapabilities
    call: Callable[[str, Callable[[], Any]], Any]

    def exists(self, name: str) -> bool:
        return bool(self.call("has_collection", partial(self.client.has_collection, name)))

    def describe(self, name: str) -> Mapping[str, Any]:
        return self.call("describe", partial(self.client.describe_collection, name))  # type: ignore[no-any-return]

    def drop(self, name: str) -> None:
        if self.exists(name):
            self.call("drop", partial(self.client.drop_collection, name))

    def load(self, name: str) -> None:
        self.call("load", partial(self.client.load_collection, name))

    def problems(
        self,
        name: str,
        description: Mapping[str, Any],
        fields: Sequence[FieldDef],
        indexes: Sequence[IndexDef],
    ) -> list[str]:
        """How the existing collection ``name`` differs from ``fields`` and ``indexes``."""
        return ms.validate_collection(description, self._index_descriptions(name), fields, indexes)

    def _index_descriptions(self, name: str) -> dict[str, Mapping[str, Any]]:
        c = self.client
        out: dict[str, Mapping[str, Any]] = {}
        for index in self.call("list_indexes", partial(c.list_indexes, name)):
            info = self.call("describe_index", partial(c.describe_index, name, index))
            if info:
                out[str(info.get("field_name", index))] = info
        return out

    def create(
        self,
        name: str,
        fields: Sequence[FieldDef],
        indexes: Sequence[IndexDef],
        description: str,
    ) -> None:
        """Creates, indexes and loads a collection; leaves none behind when a step fails."""
        c = self.client
        schema = ms.build_schema(fields, description)
        index_params = ms.build_index_params(indexes)
        # Strong consistency: a search right after an upsert sees it (what the Connector
        # contract promises); Milvus servers default to Bounded staleness.
        self.call(
            f"create_collection {name!r}",
            lambda: c.create_collection(name, schema=schema, consistency_level="Strong"),
        )
        # sync=False: pymilvus would poll every 0.5 s per index for a build that, on an empty
        # collection, has nothing to do.
        try:
            self.call(
                f"create_index on {name!r}", lambda: c.create_index(name, index_params, sync=False)
            )
            self.load(name)
        except BaseException:
            # An unindexed collection could not be loaded later: leave none behind.
            self.call("drop", partial(c.drop_collection, name))
            raise

    def query_ids(
        self,
        collection: str,
        id_field: str,
        ids: Sequence[str],
        fields: Sequence[str],
        expr: str = "",
    ) -> list[Mapping[str, Any]]:
        """The entities of ``collection`` whose ``id_field`` is one of ``ids`` (and that match
        ``expr``), with ``fields``."""
        rows: list[Mapping[str, Any]] = []
        for chunk in batched(list(dict.fromkeys(ids)), IDS_PER_QUERY):
            where = ms.and_expressions(ms.ids_expression(id_field, chunk), expr)
            rows += self.call(
                "query",
                partial(
                    self.client.query,
                    collection,
                    filter=where,
                    output_fields=list(fields),
                    limit=len(chunk),
                ),
            )
        return rows

    def hit(self, raw: Mapping[str, Any], score: float, signals: Mapping[str, float]) -> Hit:
        """A Hit from a search result (or a queried main row as ``{"id", "entity"}``)."""
        entity = raw.get("entity") or {}
        names = self.spec.fields
        return Hit(
            id=str(raw["id"]),
            score=score,
            text=str(entity.get(names.text, "")),
            metadata=dict(entity.get(names.metadata) or {}),
            signal_scores=dict(signals),
        )
