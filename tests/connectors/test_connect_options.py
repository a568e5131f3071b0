"""``connect(target, options=...)``: one options path, checked against the backend the target
picks; client settings refused where they cannot apply (an embedded engine, a client passed
in) instead of being ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from m3vdb import IndexSpec, InputError, connect
from m3vdb.connectors import ElasticsearchOptions, MilvusOptions, QdrantOptions

SPEC = IndexSpec(dense_dim=4, colbert_dim=4)


@pytest.mark.parametrize(
    ("target", "options"),
    [
        ("qdrant+memory://", MilvusOptions()),
        ("m3vdb.db", QdrantOptions()),
        ("elasticsearch://localhost:9200", MilvusOptions()),
        ("qdrant+memory://", {"api_key": "x"}),
    ],
)
def test_options_for_another_backend_are_a_type_error(target: str, options: object) -> None:
    with pytest.raises(TypeError, match="cannot configure"):
        connect(target, collection="c", spec=SPEC, options=options)  # type: ignore[arg-type]


def test_client_settings_on_an_embedded_engine_are_refused(tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite")
    db = tmp_path / "x.db"
    with pytest.raises(InputError, match="Milvus Lite"):
        connect(str(db), collection="c", spec=SPEC, options=MilvusOptions(token="root:x"))
    assert not db.exists()
    with pytest.raises(InputError, match="local mode"):
        connect("qdrant+memory://", collection="c", spec=SPEC, options=QdrantOptions(api_key="k"))


def test_default_options_open_embedded_engines(tmp_path: Path) -> None:
    with connect("qdrant+memory://", collection="c", spec=SPEC, options=QdrantOptions()) as store:
        assert store.count() == 0
    assert ElasticsearchOptions().bm25 is False
