"""Every registered database is a complete ``Engine``: no abstract method left, every
primitive of the interface implemented by the class itself or the shared Qdrant layout, and a
backend missing one fails when it is instantiated, never at a user's call."""

from __future__ import annotations

import inspect

import pytest

from m3vdb.connectors import registry
from m3vdb.connectors.engine import Engine

PRIMITIVES = {
    "open",
    "drop_collection",
    "list_collections",
    "write",
    "delete_ids",
    "delete_where",
    "get",
    "scan",
    "scan_embeddings",
    "count",
    "run",
    "drop",
    "is_transient",
    "translate_error",
}


def test_the_interface_is_exactly_the_documented_primitives() -> None:
    assert Engine.__abstractmethods__ == PRIMITIVES
    for name in PRIMITIVES:
        assert f":meth:`Engine.{name}`" in inspect.getmodule(Engine).__doc__, name  # type: ignore[operator, union-attr]


@pytest.mark.parametrize("db", registry.DATABASES, ids=lambda db: db.name)
def test_every_registered_engine_implements_the_whole_interface(db: registry.Database) -> None:
    pytest.importorskip(db.client, reason=f"{db.package} is not installed")
    engine = registry.engine_class(db)
    assert issubclass(engine, Engine)
    assert not engine.__abstractmethods__, f"{engine.__name__} lacks {engine.__abstractmethods__}"
    for name in PRIMITIVES:
        assert getattr(engine, name) is not getattr(Engine, name), name
    assert engine.database != Engine.database


def test_a_backend_missing_a_primitive_cannot_be_instantiated() -> None:
    class Partial(Engine):  # everything but delete_where
        database = "partial"

        @classmethod
        def open(cls, target, **kw):  # type: ignore[no-untyped-def, override]
            return cls(target, collection="c", spec=kw["default_spec"])

        @classmethod
        def drop_collection(cls, target, collection, *, options=None):  # type: ignore[no-untyped-def]
            return False

        @classmethod
        def list_collections(cls, target, *, options=None):  # type: ignore[no-untyped-def]
            return []

        def write(self, pairs, *, fde=None):  # type: ignore[no-untyped-def]
            pass

        def delete_ids(self, ids):  # type: ignore[no-untyped-def]
            pass

        def get(self, ids):  # type: ignore[no-untyped-def]
            return []

        def scan(self, flt, *, batch_size):  # type: ignore[no-untyped-def]
            return iter(())

        def count(self):  # type: ignore[no-untyped-def]
            return 0

        def run(self, plan):  # type: ignore[no-untyped-def]
            return []

        def drop(self):  # type: ignore[no-untyped-def]
            pass

        def is_transient(self, exc):  # type: ignore[no-untyped-def]
            return False

        def translate_error(self, exc, what):  # type: ignore[no-untyped-def]
            raise exc

    from m3vdb.schemas.spec import IndexSpec

    with pytest.raises(TypeError, match="delete_where"):
        Partial.open(object(), default_spec=IndexSpec())


def test_spec_records_round_trip_with_the_model() -> None:
    from m3vdb.connectors.engine import record_json, spec_from_record_json
    from m3vdb.schemas.spec import IndexSpec, MetadataField

    class Remote:
        dense_dim, colbert_dim, model_name = 8, 8, "BAAI/bge-m3"

    spec = IndexSpec.for_encoder(Remote(), metadata_fields=(MetadataField("year", "int"),))
    assert spec.model == "BAAI/bge-m3"
    assert spec_from_record_json(record_json(spec)) == spec
    assert spec_from_record_json({"something": "else"}) is None
    assert spec_from_record_json("not json") is None
