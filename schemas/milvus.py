"""IndexSpec -> Milvus: collection schemas, index parameters, rows, filter expressions, and the
validator of an existing collection. Pure functions; pymilvus is imported only by the two
functions that build pymilvus objects (:func:`build_schema`, :func:`build_index_params`).

Layout of a collection named ``C``:

- ``C`` (the main collection): ``id`` VARCHAR primary key (our string ids, <= 512 bytes),
  ``text`` VARCHAR (<= 65535 bytes: Milvus's VARCHAR limit; a longer text is refused with an
  InputError telling the caller to chunk it), ``metadata`` JSON, ``dense`` FLOAT_VECTOR
  (metric IP or COSINE), ``sparse`` SPARSE_FLOAT_VECTOR (SPARSE_INVERTED_INDEX, metric IP).
- ColBERT, one of two layouts chosen once from :class:`MilvusCapabilities`:

  - ``"struct"`` (Milvus >= 2.6.4 servers, float32 rows): an Array of Structs field ``colbert``
    whose struct has one FLOAT_VECTOR sub-field ``vec``, indexed as ``colbert[vec]`` with metric
    ``MAX_SIM_IP``. A document and its rows are one entity, written atomically.
  - ``"companion"`` (Milvus Lite 2.5.x, servers < 2.6.4, or ``colbert_precision="float16"``,
    which the struct's vector sub-field cannot store): a second collection ``C__colbert`` with
    one entity per ColBERT row: ``pk`` VARCHAR (``<version>/<doc>/<row>``), ``doc_id``,
    ``version``, ``row``, a copy of the document's ``metadata`` (so that a filter narrows
    ColBERT candidate generation too; readers check the filter again on the main entity, the
    copy may be stale) and ``vec`` FLOAT_VECTOR or FLOAT16_VECTOR. The main collection gets a
    ``colbert_version`` VARCHAR field naming the row set that belongs to the document; rows of
    any other version are ignored by readers. See ``connectors.milvus.colbert`` for the write
    protocol this makes safe.

Each collection's schema description records what m3vdb created (:func:`main_description`,
:func:`companion_description`), so that ``drop()`` removes a companion only when the main
collection owns it, and a collection of someone else's that happens to be named ``C__colbert``
is never used or dropped.

Metadata filters compile to boolean expressions over the JSON field
(``metadata["lang"] == "en"``) rather than to typed scalar fields: the JSON field accepts any
metadata without a schema change, a portable filter needs no knowledge of which keys were
declared, and Milvus filters JSON paths natively. ``IndexSpec.metadata_fields`` become JSON path
indexes where the server supports them (Milvus >= 2.6 servers), which is what makes such filters
fast at scale; Milvus Lite filters by scan.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from m3vdb.errors import InputError, UnsupportedCapabilityError
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.filters import And, Eq, Filter, In, Or, Range
from m3vdb.schemas.spec import IndexSpec
from m3vdb.schemas.versions import parse_version

if TYPE_CHECKING:
    from pymilvus import CollectionSchema
    from pymilvus.milvus_client.index import IndexParams

ColbertLayout = Literal["struct", "companion", "none"]

ID_MAX_BYTES = 512
TEXT_MAX_BYTES = 65535  # Milvus's VARCHAR max_length
VERSION_MAX_BYTES = 64
QUERY_LIMIT = 16384  # Milvus caps query/search limit (offset + limit) at 16384
STRUCT_MAX_CAPACITY = 4096  # Milvus's default cap on an Array field's max_capacity
COLBERT_SUBFIELD = "vec"
COMPANION_SUFFIX = "__colbert"
NATIVE_MULTIVECTOR_SINCE = (2, 6, 4)
JSON_PATH_INDEX_SINCE = (2, 6, 0)


# --------------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class MilvusCapabilities:
    """What the connected Milvus can do, detected once when the connector opens.

    Attributes:
        server_version: the version string the server reported; None for Milvus Lite, which
            does not implement the GetVersion call.
        lite: the engine is Milvus Lite (embedded): FLAT / IVF_FLAT dense indexes only, no Array
            of Structs, no JSON path index.
        native_multivector: Array of Structs with a vector sub-field and MAX_SIM metrics
            (Milvus >= 2.6.4).
        json_path_index: JSON path indexes on metadata keys.
    """

    server_version: str | None
    lite: bool
    native_multivector: bool
    json_path_index: bool

    @classmethod
    def for_lite(cls) -> MilvusCapabilities:
        return cls(server_version=None, lite=True, native_multivector=False, json_path_index=False)

    @classmethod
    def for_server(cls, version: str) -> MilvusCapabilities:
        """Capabilities of a server reporting ``version`` (e.g. ``"v2.6.4"``, ``"2.5.10-dev"``).

        An unparseable version is treated as the oldest supported one (fallbacks everywhere),
        which is slower but never wrong.
        """
        parsed = parse_version(version)
        return cls(
            server_version=version,
            lite=False,
            native_multivector=parsed is not None and parsed >= NATIVE_MULTIVECTOR_SINCE,
            json_path_index=parsed is not None and parsed >= JSON_PATH_INDEX_SINCE,
        )

    def colbert_layout(self, spec: IndexSpec) -> ColbertLayout:
        """Which ColBERT layout a NEW collection gets (an existing one keeps its own)."""
        if not spec.colbert:
            return "none"
        if (
            self.native_multivector
            and spec.colbert_precision == "float32"
            and spec.max_colbert_rows <= STRUCT_MAX_CAPACITY
        ):
            return "struct"
        return "companion"

    def dense_index_type(self) -> str:
        # Lite builds only FLAT / IVF_FLAT; a server picks its tuned default (HNSW today).
        return "FLAT" if self.lite else "AUTOINDEX"


# --------------------------------------------------------------------------- field layout


@dataclass(frozen=True)
class FieldDef:
    """One field as Milvus describes it: ``dtype`` is the pymilvus ``DataType`` member name."""

    name: str
    dtype: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    is_primary: bool = False
    struct_fields: tuple[FieldDef, ...] = ()


@dataclass(frozen=True)
class IndexDef:
    """One index: the field (``colbert[vec]`` for a struct sub-field), its type and metric."""

    field: str
    index_type: str
    metric: str | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def companion_name(collection: str) -> str:
    """Name of the companion collection holding ColBERT rows of ``collection``."""
    return collection + COMPANION_SUFFIX


# What m3vdb created is recorded in the collections' schema descriptions (Milvus Lite does not
# implement collection properties), so that drop() removes only what the layout created.
_RECORD_PREFIX = "m3vdb:"


def main_description(layout: ColbertLayout, collection: str) -> str:
    """The main collection's description: its ColBERT layout and, for ``"companion"``, the
    companion collection it owns."""
    record: dict[str, str] = {"colbert": layout}
    if layout == "companion":
        record["companion"] = companion_name(collection)
    return _RECORD_PREFIX + json.dumps(record, sort_keys=True)


def companion_description(collection: str) -> str:
    """The companion collection's description: the main collection it belongs to."""
    return _RECORD_PREFIX + json.dumps({"colbert_rows_of": collection})


def _record(description: Mapping[str, Any]) -> dict[str, Any] | None:
    text = str(description.get("description") or "")
    if not text.startswith(_RECORD_PREFIX):
        return None
    try:
        record = json.loads(text[len(_RECORD_PREFIX) :])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def owned_companion(description: Mapping[str, Any], spec: IndexSpec) -> str | None:
    """The companion collection a main collection owns, from its ``describe_collection()``:
    the one its description records, or, for collections created before m3vdb recorded it,
    the ``C__colbert`` its ColBERT version field points into. None when it owns none (stored
    without ColBERT, or natively): a collection of that name then belongs to someone else."""
    record = _record(description)
    if record is not None:
        companion = record.get("companion")
        return companion if isinstance(companion, str) else None
    names = {f.get("name") for f in _described_fields(description)}
    if version_field(spec) in names:
        return companion_name(str(description.get("collection_name", "")))
    return None


def is_companion_of(description: Mapping[str, Any], collection: str) -> bool:
    """Whether a companion collection's ``describe_collection()`` records that it holds the
    ColBERT rows of ``collection``."""
    record = _record(description)
    return record is not None and record.get("colbert_rows_of") == collection


def version_field(spec: IndexSpec) -> str:
    """Main-collection field naming the current ColBERT row set (companion layout only)."""
    return spec.fields.colbert + "_version"


def main_fields(spec: IndexSpec, layout: ColbertLayout) -> list[FieldDef]:
    """The main collection's fields for ``spec`` and a ColBERT ``layout``."""
    names = spec.fields
    fields = [
        FieldDef(names.id, "VARCHAR", {"max_length": ID_MAX_BYTES}, is_primary=True),
        FieldDef(names.text, "VARCHAR", {"max_length": TEXT_MAX_BYTES}),
        FieldDef(names.metadata, "JSON"),
    ]
    if spec.dense:
        fields.append(FieldDef(names.dense, "FLOAT_VECTOR", {"dim": spec.dense_dim}))
    if spec.sparse:
        fields.append(FieldDef(names.sparse, "SPARSE_FLOAT_VECTOR"))
    if spec.colbert_fde is not None:
        fields.append(FieldDef(names.colbert_fde, "FLOAT_VECTOR", {"dim": spec.colbert_fde.dim}))
    if layout == "struct":
        sub = FieldDef(COLBERT_SUBFIELD, "FLOAT_VECTOR", {"dim": spec.colbert_dim})
        fields.append(
            FieldDef(
                names.colbert,
                "ARRAY",
                {"element_type": "STRUCT", "max_capacity": spec.max_colbert_rows},
                struct_fields=(sub,),
            )
        )
    elif layout == "companion":
        fields.append(FieldDef(version_field(spec), "VARCHAR", {"max_length": VERSION_MAX_BYTES}))
    return fields


def main_indexes(
    spec: IndexSpec, layout: ColbertLayout, caps: MilvusCapabilities
) -> list[IndexDef]:
    """The main collection's indexes (every vector field needs one before Milvus loads it)."""
    names = spec.fields
    indexes: list[IndexDef] = []
    if spec.dense:
        metric = "IP" if spec.dense_metric == "ip" else "COSINE"
        indexes.append(IndexDef(names.dense, caps.dense_index_type(), metric))
    if spec.sparse:
        indexes.append(IndexDef(names.sparse, "SPARSE_INVERTED_INDEX", "IP"))
    if spec.colbert_fde is not None:
        # IP: the FDE inner product approximates MaxSim (the vectors are not normalised)
        indexes.append(IndexDef(names.colbert_fde, caps.dense_index_type(), "IP"))
    if layout == "struct":
        indexes.append(IndexDef(f"{names.colbert}[{COLBERT_SUBFIELD}]", "AUTOINDEX", "MAX_SIM_IP"))
    if caps.json_path_index:
        cast = {"keyword": "varchar", "int": "double", "float": "double", "bool": "bool"}
        for meta in spec.metadata_fields:
            indexes.append(
                IndexDef(
                    names.metadata,
                    "INVERTED",
                    None,
                    {
                        "index_name": f"{names.metadata}_{meta.name}",
                        "json_path": f"{names.metadata}[{json_string(meta.name)}]",
                        "json_cast_type": cast[meta.type],
                    },
                )
            )
    return indexes


def check_colbert_precision(spec: IndexSpec, caps: MilvusCapabilities) -> None:
    """UnsupportedCapabilityError for a ColBERT precision m3vdb cannot store in Milvus:
    float32 and float16 (``FLOAT16_VECTOR`` rows of the companion collection) are stored;
    int8 needs ``INT8_VECTOR`` (Milvus 2.6+; Milvus Lite 2.5 refuses the type: "unsupported
    scalar type") and binary a ``BINARY_VECTOR`` companion with an asymmetric rerank that
    m3vdb's Milvus layouts do not have yet (Lite 2.5 itself stores and searches BIN_FLAT /
    HAMMING)."""
    if not spec.colbert or spec.colbert_precision in ("float32", "float16"):
        return
    where = "Milvus Lite" if caps.lite else f"Milvus {caps.server_version or ''}".strip()
    raise UnsupportedCapabilityError(
        f"colbert_precision={spec.colbert_precision!r} cannot be stored by m3vdb in {where} "
        "(it stores float32 and float16 ColBERT rows). Qdrant (server, local and edge: "
        f"{spec.colbert_precision} quantisation with rescoring) and Elasticsearch "
        f"(rank_vectors element_type {'byte' if spec.colbert_precision == 'int8' else 'bit'}) "
        "store it; or use colbert_precision='float16' here (half the bytes)"
    )


def companion_fields(spec: IndexSpec) -> list[FieldDef]:
    """The companion collection's fields: one entity per ColBERT row."""
    vec_type = "FLOAT16_VECTOR" if spec.colbert_precision == "float16" else "FLOAT_VECTOR"
    return [
        FieldDef("pk", "VARCHAR", {"max_length": 2 * VERSION_MAX_BYTES}, is_primary=True),
        FieldDef("doc_id", "VARCHAR", {"max_length": ID_MAX_BYTES}),
        FieldDef("version", "VARCHAR", {"max_length": VERSION_MAX_BYTES}),
        FieldDef("row", "INT32"),
        FieldDef(spec.fields.metadata, "JSON"),
        FieldDef(COLBERT_SUBFIELD, vec_type, {"dim": spec.colbert_dim}),
    ]


def companion_indexes(spec: IndexSpec, caps: MilvusCapabilities) -> list[IndexDef]:
    # Rerank fetches rows by doc id and needs no ANN index; mode="colbert" scans unless the spec
    # asks for one (and Lite offers only FLAT).
    index_type = "AUTOINDEX" if spec.colbert_index and not caps.lite else "FLAT"
    return [IndexDef(COLBERT_SUBFIELD, index_type, "IP")]


def build_schema(fields: Sequence[FieldDef], description: str = "") -> CollectionSchema:
    """A pymilvus ``CollectionSchema`` for ``fields`` (no dynamic field: every key is declared);
    ``description`` records what m3vdb created (:func:`main_description`)."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=False, description=description
    )
    for f in fields:
        params = dict(f.params)
        if f.struct_fields:
            struct = MilvusClient.create_struct_field_schema()
            for sub in f.struct_fields:
                struct.add_field(sub.name, DataType[sub.dtype], **dict(sub.params))
            schema.add_field(
                f.name,
                DataType.ARRAY,
                element_type=DataType.STRUCT,
                struct_schema=struct,
                max_capacity=params["max_capacity"],
            )
        else:
            schema.add_field(f.name, DataType[f.dtype], is_primary=f.is_primary, **params)
    return schema


def build_index_params(indexes: Sequence[IndexDef]) -> IndexParams:
    """pymilvus ``IndexParams`` for ``indexes``."""
    from pymilvus import MilvusClient

    params = MilvusClient.prepare_index_params()
    for index in indexes:
        extra = dict(index.params)
        index_name = extra.pop("index_name", "")
        if index.metric is None:
            params.add_index(index.field, index.index_type, index_name, params=extra)
        else:
            params.add_index(index.field, index.index_type, index_name, metric_type=index.metric)
    return params


# --------------------------------------------------------------------------- validation


def layout_of(description: Mapping[str, Any], spec: IndexSpec) -> ColbertLayout:
    """The ColBERT layout of an existing collection, read from ``describe_collection()``."""
    if not spec.colbert:
        return "none"
    names = {f.get("name") for f in _described_fields(description)}
    if spec.fields.colbert in names:
        return "struct"
    return "companion"


def validate_collection(
    description: Mapping[str, Any],
    index_descriptions: Mapping[str, Mapping[str, Any]],
    expected_fields: Sequence[FieldDef],
    expected_indexes: Sequence[IndexDef],
) -> list[str]:
    """Human-readable differences between an existing collection and what the spec needs.

    Args:
        description: ``client.describe_collection(name)``.
        index_descriptions: field name -> ``client.describe_index(name, index_name)`` for every
            index of the collection.
        expected_fields: :func:`main_fields` or :func:`companion_fields`.
        expected_indexes: the vector indexes whose metric matters (JSON path indexes are
            optional and not checked).

    Returns:
        One line per problem (``field 'dense': dim is 768, expected 1024``); empty when the
        collection can be used. Fields the spec does not need are allowed.
    """
    found = {f.get("name"): f for f in _described_fields(description)}
    problems: list[str] = []
    for want in expected_fields:
        have = found.get(want.name)
        if have is None:
            problems.append(f"field {want.name!r} is missing (expected {_describe_def(want)})")
            continue
        dtype = _dtype_name(have.get("type"))
        if dtype in ("STRUCT", "_ARRAY_OF_STRUCT") and want.struct_fields:
            dtype = "ARRAY"
        if dtype != want.dtype:
            problems.append(f"field {want.name!r} has type {dtype}, expected {want.dtype}")
            continue
        if want.is_primary and not have.get("is_primary", False):
            problems.append(f"field {want.name!r} is not the primary key")
        have_params = dict(have.get("params") or {})
        for key in ("dim",):
            if key in want.params and str(have_params.get(key)) != str(want.params[key]):
                problems.append(
                    f"field {want.name!r}: {key} is {have_params.get(key)}, expected "
                    f"{want.params[key]}"
                )
        for key in ("max_length", "max_capacity"):
            if key in have_params and int(have_params[key]) < int(want.params.get(key, 0)):
                problems.append(
                    f"field {want.name!r}: {key} is {have_params[key]}, expected at least "
                    f"{want.params[key]}"
                )
        for sub in want.struct_fields:
            sub_have = {s.get("name"): s for s in have.get("fields") or []}.get(sub.name)
            sub_dim = None if sub_have is None else (sub_have.get("params") or {}).get("dim")
            if sub_have is not None and str(sub_dim) != str(sub.params.get("dim")):
                problems.append(
                    f"field {want.name!r}[{sub.name}]: dim is {sub_dim}, expected "
                    f"{sub.params.get('dim')}"
                )
    for index in expected_indexes:
        if index.metric is None:
            continue
        have_index = index_descriptions.get(index.field)
        if have_index is None:
            problems.append(
                f"field {index.field!r} has no index (expected {index.index_type}, metric "
                f"{index.metric})"
            )
            continue
        metric = str(have_index.get("metric_type", "")).upper()
        if metric != index.metric:
            problems.append(f"field {index.field!r}: metric is {metric}, expected {index.metric}")
    return problems


def _described_fields(description: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # Servers with Array of Structs list those fields apart, under "struct_array_fields".
    return list(description.get("fields") or []) + list(
        description.get("struct_array_fields") or []
    )


def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None)
    return str(name if name is not None else dtype).upper()


def _describe_def(f: FieldDef) -> str:
    params = ", ".join(f"{k}={v}" for k, v in f.params.items())
    return f"{f.dtype}({params})" if params else f.dtype


# --------------------------------------------------------------------------- rows


def id_problem(doc_id: str, *, lite: bool) -> str | None:
    """Why Milvus (``lite``: Milvus Lite) could store ``doc_id`` but not address it again, or
    None. Ids reach Milvus only inside :func:`ids_expression`'s escaped literals; these are
    what no escaping can carry:

    - a control character (newline, tab...): Milvus's expression parsers disagree on escapes
      of control characters (:func:`json_string`), so no filter reaches such an id, and the
      document could be stored but never fetched or deleted;
    - on Milvus Lite 2.5, an apostrophe or a backslash: Lite deletes (and an upsert deletes
      first) with SQL built by pasting the id between single quotes, so ``it's`` fails with
      "internal error" and a crafted id would run as SQL; and its ``hybrid_search`` fetches
      the hits' fields with an expression that pastes their ids between single quotes, so
      ``back\\slash`` (an unknown escape there) fails every hybrid search that finds it.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in doc_id):
        return (
            "holds a control character (newline, tab...), which no Milvus filter expression "
            "can match: it could be stored but never fetched or deleted"
        )
    if lite and ("'" in doc_id or "\\" in doc_id):
        return (
            "holds an apostrophe or a backslash, which Milvus Lite cannot delete, replace or "
            "return from a hybrid search (it pastes ids between single quotes unescaped, in "
            "SQL and in expressions)"
        )
    return None


def check_id(doc_id: str, *, lite: bool) -> None:
    """InputError when :func:`id_problem` finds one, before anything is written or read."""
    problem = id_problem(doc_id, lite=lite)
    if problem is not None:
        where = "Milvus Lite" if lite else "Milvus"
        raise InputError(
            f"document id {doc_id!r} {problem}; {where} refuses it: use another id (e.g. "
            "replace those characters, or a hash of the id)"
        )


def check_document_limits(doc: Document, *, lite: bool) -> None:
    """Raises InputError when ``doc`` does not fit Milvus's VARCHAR and JSON fields, or its
    id could not be addressed again (:func:`id_problem`)."""
    check_id(doc.id, lite=lite)
    id_bytes = len(doc.id.encode("utf-8"))
    if id_bytes > ID_MAX_BYTES:
        raise InputError(
            f"document id {doc.id[:40]!r}... is {id_bytes} bytes; Milvus ids here hold at most "
            f"{ID_MAX_BYTES} bytes: use a shorter id (e.g. a hash of it)"
        )
    text_bytes = len(doc.text.encode("utf-8"))
    if text_bytes > TEXT_MAX_BYTES:
        raise InputError(
            f"document {doc.id!r} has a text of {text_bytes} UTF-8 bytes; a Milvus VARCHAR field "
            f"holds at most {TEXT_MAX_BYTES}: split the text into chunks "
            "(M3Encoder.encode_windows) "
            "and index each chunk as its own document"
        )
    try:
        json.dumps(dict(doc.metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"document {doc.id!r} has metadata that is not JSON ({exc}); use str, int, float, "
            "bool, lists and dicts of them"
        ) from exc


def sparse_to_milvus(sparse: Mapping[int, float]) -> dict[int, float]:
    return {int(k): float(v) for k, v in sparse.items()}


def main_row(
    doc: Document,
    emb: M3Embedding,
    spec: IndexSpec,
    layout: ColbertLayout,
    version: str | None = None,
    fde: np.ndarray | None = None,
) -> dict[str, Any]:
    """The main collection's entity for one document (``version`` for the companion layout,
    ``fde`` its MUVERA encoding when ``spec.colbert_fde`` is set).

    Raises:
        InputError: the spec stores an FDE and ``fde`` is missing or of another size.
    """
    names = spec.fields
    row: dict[str, Any] = {
        names.id: doc.id,
        names.text: doc.text,
        names.metadata: dict(doc.metadata),
    }
    if spec.dense and emb.dense is not None:
        row[names.dense] = np.asarray(emb.dense, dtype=np.float32)
    if spec.sparse and emb.sparse is not None:
        row[names.sparse] = sparse_to_milvus(emb.sparse)
    if spec.colbert_fde is not None:
        if fde is None or np.shape(fde) != (spec.colbert_fde.dim,):
            raise InputError(
                f"document {doc.id!r} needs a MUVERA encoding of shape "
                f"({spec.colbert_fde.dim},) (IndexSpec.colbert_fde), got "
                f"{None if fde is None else np.shape(fde)}; write through Collection.upsert, "
                "which computes it"
            )
        row[names.colbert_fde] = np.asarray(fde, dtype=np.float32)
    if layout == "struct" and emb.colbert is not None:
        rows = np.asarray(emb.colbert, dtype=np.float32)
        row[names.colbert] = [{COLBERT_SUBFIELD: r} for r in rows]
    elif layout == "companion":
        if version is None:
            raise ValueError("the companion layout needs the version of the row set")
        row[version_field(spec)] = version
    return row


def colbert_rows(
    doc: Document, emb: M3Embedding, spec: IndexSpec, version: str, doc_index: int
) -> list[dict[str, Any]]:
    """Companion-collection entities for one document's ColBERT rows.

    ``pk`` is ``<version>/<doc_index>/<row>``: unique because ``version`` is unique per written
    batch, and deterministic so that a retried upsert rewrites the same entities.
    """
    if emb.colbert is None:
        return []
    dtype = np.float16 if spec.colbert_precision == "float16" else np.float32
    rows = np.asarray(emb.colbert, dtype=dtype)
    metadata = dict(doc.metadata)
    return [
        {
            "pk": f"{version}/{doc_index}/{i}",
            "doc_id": doc.id,
            "version": version,
            "row": i,
            spec.fields.metadata: metadata,
            COLBERT_SUBFIELD: rows[i],
        }
        for i in range(rows.shape[0])
    ]


def document_from_row(row: Mapping[str, Any], spec: IndexSpec) -> Document:
    """The :class:`Document` stored in a main-collection entity."""
    names = spec.fields
    return Document(
        id=str(row[names.id]),
        text=str(row.get(names.text, "")),
        metadata=dict(row.get(names.metadata) or {}),
    )


def vector_from_milvus(value: Any, dtype: type[np.floating[Any]] = np.float32) -> np.ndarray:
    """A vector as pymilvus returns it (list of floats, or ``[bytes]`` for FLOAT16_VECTOR)."""
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], bytes):
        value = value[0]
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype=np.float16).astype(np.float32)
    return np.asarray(value, dtype=dtype).astype(np.float32)


def sparse_from_milvus(value: Any) -> dict[int, float]:
    """A sparse vector as pymilvus returns it (a dict, or a scipy row) as ``{token: weight}``."""
    if isinstance(value, Mapping):
        return {int(k): float(v) for k, v in value.items()}
    coo = value.tocoo()  # scipy sparse row
    return {int(k): float(v) for k, v in zip(coo.col, coo.data)}


def colbert_from_rows(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Companion rows of ONE version -> the ``(n, dim)`` float32 array, in row order.

    Duplicate row numbers (a retried write) are kept once.
    """
    by_row = {int(r["row"]): vector_from_milvus(r[COLBERT_SUBFIELD]) for r in rows}
    return np.stack([by_row[i] for i in sorted(by_row)])


def embedding_from_rows(
    row: Mapping[str, Any],
    spec: IndexSpec,
    token_rows: Sequence[Mapping[str, Any]] | None = None,
) -> M3Embedding:
    """The stored :class:`M3Embedding` from a main entity (and its companion rows)."""
    names = spec.fields
    dense = vector_from_milvus(row[names.dense]) if spec.dense and names.dense in row else None
    sparse = sparse_from_milvus(row[names.sparse]) if spec.sparse and names.sparse in row else None
    colbert = None
    if spec.colbert:
        if names.colbert in row and row[names.colbert] is not None:
            colbert = np.stack(
                [vector_from_milvus(s[COLBERT_SUBFIELD]) for s in row[names.colbert]]
            )
        elif token_rows:
            colbert = colbert_from_rows(token_rows)
    return M3Embedding(dense=dense, sparse=sparse, colbert=colbert)


# --------------------------------------------------------------------------- filters


# What json_string refuses; a regex, not a loop over characters: ColBERT reads pass thousands
# of row keys through json_string per query.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def json_string(value: str) -> str:
    """A Milvus expression string literal: double quotes, with ``\\`` and ``"`` escaped.

    Milvus's expression parsers disagree on escapes of control characters (Milvus Lite 2.5
    does not decode ``\\n``), so strings holding them are refused rather than risk a filter
    that silently matches nothing. Non-ASCII text is written as is (``\\uXXXX`` escapes are
    not decoded either).
    """
    if _CONTROL_CHARACTER.search(value):
        raise InputError(
            f"filter string {value!r} contains a control character (newline, tab...); Milvus "
            "filter expressions cannot match those reliably: filter on another value"
        )
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise InputError(f"filter value {value!r} is not a finite number")
        return repr(float(value))
    if isinstance(value, str):
        return json_string(value)
    raise InputError(f"filter value {value!r} must be a str, int, float or bool")


def compile_filter(flt: Filter | None, metadata_field: str = "metadata") -> str:
    """A portable filter as a Milvus boolean expression over the JSON metadata field.

    Semantics of ``m3vdb.schemas.filters.matches``: a list-valued key matches ``eq`` / ``in_``
    when any element does, hence a scalar test OR a ``json_contains`` one:

    - ``Eq("tag", "x")`` -> ``metadata["tag"] == "x" or json_contains(metadata["tag"], "x")``;
    - ``In("tag", ["x", "y"])`` -> ``metadata["tag"] in ["x", "y"] or
      json_contains_any(metadata["tag"], ["x", "y"])``. Values of different JSON types
      (str, int, float, bool) become one such pair per type joined by ``or``: Milvus rejects
      an ``in`` list mixing types, and ``json_contains_any`` of booleans, so booleans use
      ``json_contains`` one by one;
    - ``Range`` -> comparisons joined by ``and``; ``And`` / ``Or`` -> parenthesised ``and`` /
      ``or``; ``None`` -> ``""`` (Milvus's "no filter").

    Milvus compares ``true`` only with booleans and ``1`` with ``1.0``, as ``matches`` does.
    A key absent from a document's metadata makes every test false.

    Limitation: a range over a LIST value matches nothing. Milvus (Lite 2.5 and servers up to
    2.6) has no "some element satisfies" predicate on JSON arrays (``json_contains*`` test
    equality only; ``metadata["k"][i]`` needs the index), and the filter cannot see the data
    to detect the case, so ``range_`` on Milvus applies to scalar values only, where Qdrant
    and Elasticsearch also match lists holding an element in range.
    """
    if flt is None:
        return ""
    if isinstance(flt, (And, Or)):
        if not flt.clauses:
            return "true" if isinstance(flt, And) else "false"
        joiner = " and " if isinstance(flt, And) else " or "
        return joiner.join(f"({compile_filter(c, metadata_field)})" for c in flt.clauses)
    path = f"{metadata_field}[{json_string(flt.field)}]"
    if isinstance(flt, Eq):
        return _eq_expression(path, flt.value)
    if isinstance(flt, In):
        parts: list[str] = []
        for kind in (str, int, float, bool, object):  # object: not a filter value, refused
            group = [v for v in flt.values if _kind(v) is kind]
            if kind in (bool, object) or len(group) == 1:
                parts.extend(_eq_expression(path, v) for v in group)
            elif group:
                literals = f"[{', '.join(_literal(v) for v in group)}]"
                parts.append(f"{path} in {literals} or json_contains_any({path}, {literals})")
        return " or ".join(parts)
    if isinstance(flt, Range):
        comparisons = [
            f"{path} {op} {_literal(bound)}"
            for op, bound in ((">", flt.gt), (">=", flt.gte), ("<", flt.lt), ("<=", flt.lte))
            if bound is not None
        ]
        return " and ".join(comparisons)
    raise InputError(f"unknown filter clause {flt!r}")


def _kind(value: Any) -> type:
    """The JSON type a filter value compares as (bool before int: bool is an int)."""
    for kind in (bool, str, int, float):
        if isinstance(value, kind):
            return kind
    if isinstance(value, np.integer):
        return int
    if isinstance(value, np.floating):
        return float
    return object  # refused by _literal


def _eq_expression(path: str, value: Any) -> str:
    literal = _literal(value)
    return f"{path} == {literal} or json_contains({path}, {literal})"


def ids_expression(id_field: str, ids: Sequence[str]) -> str:
    """``id in ["a", "b"]`` with the ids escaped: with :func:`after_id_expression`, the only
    place where ids become expression text (never pymilvus's ``ids=``, which pastes them
    between single quotes unescaped).
    Expression templates (``filter_params``) would carry them as data, but Milvus Lite 2.5
    cannot parse templates; :func:`json_string` literals are exact on Lite and servers for
    every id :func:`check_id` accepts."""
    return f"{id_field} in [{', '.join(json_string(i) for i in ids)}]"


def after_id_expression(id_field: str, last: str) -> str:
    """``id > "last"`` (escaped as :func:`ids_expression` does): the cursor of a scan."""
    return f"{id_field} > {json_string(last)}"


def and_expressions(*exprs: str) -> str:
    """Joins non-empty expressions with ``and``."""
    parts = [e for e in exprs if e]
    if len(parts) <= 1:
        return parts[0] if parts else ""
    return " and ".join(f"({e})" for e in parts)
