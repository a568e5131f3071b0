"""IndexSpec -> Qdrant's native collection config, documents -> points, and back.

Pure functions: nothing here talks to a server. ``qdrant_client`` is imported when a function
needs its models, so ``import schemas`` works without it.

The Qdrant layout of a collection:

- ``spec.fields.dense``: a named dense vector, ``Distance.DOT`` for ``dense_metric="ip"`` (the
  BGE-M3 dense score) or ``Distance.COSINE``.
- ``spec.fields.sparse``: a named sparse vector in ``sparse_vectors_config``, no IDF modifier
  (the stored weights ARE the lexical score).
- ``spec.fields.colbert``: a named multivector, ``MultiVectorConfig(comparator=MAX_SIM)``,
  ``Distance.DOT``; ``hnsw_config.m=0`` (no graph: it only reranks or is scanned) unless
  ``spec.colbert_index``; the storage of :func:`colbert_storage`: ``Datatype.FLOAT16`` for
  ``colbert_precision="float16"``; for ``"int8"`` / ``"binary"`` float16 originals on disk
  (``on_disk=True``) with Qdrant's scalar int8 / binary quantisation held in RAM
  (``always_ram=True``), searched with ``rescore=True`` and the oversampling of
  :data:`RESCORE_OVERSAMPLING` (:func:`colbert_search_params`), so scores stay MaxSim over
  the float16 originals.
- ``spec.fields.colbert_fde`` (only with ``spec.colbert_fde``): a named dense vector,
  ``Distance.DOT``, holding the document's MUVERA encoding (``m3vdb.schemas.muvera``): the
  first stage of ``mode="colbert"``, with Qdrant's default HNSW graph.
- Point id: ``uuid5(M3VDB_NAMESPACE, document id)`` (Qdrant ids must be unsigned ints or
  UUIDs); the payload keeps the original id under ``spec.fields.id``, the text under
  ``spec.fields.text`` and the metadata dict under ``spec.fields.metadata``, so a metadata
  key ``lang`` is filtered as the payload path ``metadata.lang`` and a key ``a.b`` (one
  literal key) as ``metadata."a.b"`` (:func:`metadata_key`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from m3vdb.errors import InputError
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.filters import And, Eq, Filter, In, Or, Range
from m3vdb.schemas.optional import import_optional
from m3vdb.schemas.spec import IndexSpec, MetadataType

if TYPE_CHECKING:
    from qdrant_client import models

# Qdrant refuses a multivector point above this many floats (rows * dim), whatever the config.
QDRANT_MAX_MULTIVECTOR_FLOATS = 1_048_576
# Fixed namespace: the same document id maps to the same point id in every collection, on
# every machine, forever. Changing it would orphan every stored point.
M3VDB_NAMESPACE = uuid.UUID("5b0f3c1e-6d2a-5e8f-9a41-3c7d2b9e0f17")

#: Candidates per result a quantised ColBERT search rescores with the originals (Qdrant's
#: ``QuantizationSearchParams.oversampling``): binary codes rank coarsely (one bit a dimension),
#: so more of them are rescored; int8 keeps the order nearly exact.
RESCORE_OVERSAMPLING = {"int8": 2.0, "binary": 8.0}

_PAYLOAD_TYPES: dict[MetadataType, str] = {
    "keyword": "keyword",
    "int": "integer",
    "float": "float",
    "bool": "bool",
}


def qdrant_models() -> Any:
    """``qdrant_client.models``, or a MissingDependencyError with the pip command."""
    return import_optional(
        "qdrant_client.models",
        package="qdrant-client",
        extra="qdrant",
        purpose="The Qdrant connector",
    )


def point_id(doc_id: str) -> str:
    """The Qdrant point id (a UUID string) of a document id; deterministic."""
    if not isinstance(doc_id, str) or not doc_id:
        raise InputError(f"document ids must be non-empty strings, got {doc_id!r}")
    return str(uuid.uuid5(M3VDB_NAMESPACE, doc_id))


def metadata_key(spec: IndexSpec, name: str) -> str:
    """The payload path of the LITERAL metadata key ``name``: ``metadata.lang``, or
    ``metadata."a.b"`` for a key Qdrant's path syntax would split (``.``, ``[``, ``]``,
    spaces, ``/``...).

    Qdrant reads a condition's key as a JSON path: ``a.b`` is key ``b`` inside object ``a``,
    ``k[0]`` an array element, ``t[]`` every element. A path segment of letters, digits, ``_``
    and ``-`` is taken as is; any other key must be written in double quotes, which Qdrant
    reads verbatim up to the next ``"`` (no escape sequence exists, in the server's parser
    ``lib/segment/src/json_path/parse.rs`` or in local mode's ``json_path_parser.py``).

    Raises:
        InputError: ``name`` holds ``"`` or ``\\``, which no Qdrant path can express; the same
            error at write time (:func:`check_metadata_keys`) and query time, so such a key is
            never stored where a filter could not reach it.
    """
    return f"{spec.fields.metadata}.{_path_segment(name)}"


def _path_segment(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise InputError(f"metadata keys must be non-empty strings, got {name!r}")
    if all(c.isalnum() or c in "_-" for c in name):
        return name
    if '"' in name or "\\" in name:
        raise InputError(
            f"metadata key {name!r} contains a double quote or a backslash, which Qdrant's "
            "payload paths cannot express (a quoted path segment has no escapes); rename the "
            "key (e.g. replace the character with '_')"
        )
    return f'"{name}"'


def check_metadata_keys(doc: Document) -> None:
    """Raises InputError, before anything is written, for a metadata key that a Qdrant filter
    could not address (see :func:`metadata_key`)."""
    for key in doc.metadata:
        try:
            _path_segment(key)
        except InputError as exc:
            raise InputError(f"document {doc.id!r}: {exc}") from None


def dense_distance(spec: IndexSpec) -> models.Distance:
    m = qdrant_models()
    return m.Distance.DOT if spec.dense_metric == "ip" else m.Distance.COSINE


def colbert_storage(spec: IndexSpec) -> dict[str, Any]:
    """How the ColBERT multivector stores ``spec.colbert_precision``, in plain words shared by
    both Qdrant engines: ``datatype`` ("float16" or None for float32), ``quantization``
    (None, "int8" or "binary") and ``on_disk`` (the originals memory-mapped: a quantised
    search reads the quantised copy in RAM and only the candidates' originals)."""
    precision = spec.colbert_precision
    quantised = precision in ("int8", "binary")
    return {
        "datatype": "float16" if precision != "float32" else None,
        "quantization": precision if quantised else None,
        "on_disk": True if quantised else None,
    }


def colbert_search_params(spec: IndexSpec) -> models.SearchParams | None:
    """qdrant-client's search params for a query over the ColBERT multivector: rescore the
    quantised candidates with the originals (None when nothing is quantised)."""
    if spec.colbert_precision not in RESCORE_OVERSAMPLING:
        return None
    m = qdrant_models()
    return m.SearchParams(
        quantization=m.QuantizationSearchParams(
            rescore=True, oversampling=RESCORE_OVERSAMPLING[spec.colbert_precision]
        )
    )


def vectors_config(spec: IndexSpec) -> dict[str, models.VectorParams]:
    """The named dense vectors (dense, colbert multivector) of the collection."""
    m = qdrant_models()
    out: dict[str, models.VectorParams] = {}
    if spec.dense:
        out[spec.fields.dense] = m.VectorParams(size=spec.dense_dim, distance=dense_distance(spec))
    if spec.colbert:
        storage = colbert_storage(spec)
        quantization: Any = None
        if storage["quantization"] == "int8":
            quantization = m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, always_ram=True)
            )
        elif storage["quantization"] == "binary":
            quantization = m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        out[spec.fields.colbert] = m.VectorParams(
            size=spec.colbert_dim,
            # DOT on normalised rows is the cosine; MaxSim sums the best dot per query row.
            distance=m.Distance.DOT,
            multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM),
            # m=0: no HNSW graph over token rows (they rerank candidates or are scanned); an
            # index over every token of the corpus is large and rarely worth it.
            hnsw_config=None if spec.colbert_index else m.HnswConfigDiff(m=0),
            datatype=m.Datatype.FLOAT16 if storage["datatype"] == "float16" else None,
            quantization_config=quantization,
            on_disk=storage["on_disk"],
        )
    if spec.colbert_fde is not None:
        # DOT: the FDE inner product approximates MaxSim; the vectors are not normalised.
        out[spec.fields.colbert_fde] = m.VectorParams(
            size=spec.colbert_fde.dim, distance=m.Distance.DOT
        )
    return out


def _precision_of(is_f16: bool, quantization: str | None) -> str:
    """The colbert_precision a stored multivector config stands for (for messages)."""
    if quantization is not None:
        return quantization
    return "float16" if is_f16 else "float32"


def sparse_vectors_config(spec: IndexSpec) -> dict[str, models.SparseVectorParams]:
    """The named sparse vector; no IDF modifier: BGE-M3's weights are the lexical score."""
    m = qdrant_models()
    return {spec.fields.sparse: m.SparseVectorParams()} if spec.sparse else {}


def payload_indexes(spec: IndexSpec) -> list[tuple[str, models.PayloadSchemaType]]:
    """(payload path, schema type) of every metadata field to index for filtering."""
    m = qdrant_models()
    return [
        (metadata_key(spec, f.name), m.PayloadSchemaType(_PAYLOAD_TYPES[f.type]))
        for f in spec.metadata_fields
    ]


def check_multivector_cap(spec: IndexSpec, doc_id: str, rows: int) -> None:
    """Raises InputError when ``rows`` ColBERT rows exceed Qdrant's per-point hard cap."""
    floats = rows * spec.colbert_dim
    if floats > QDRANT_MAX_MULTIVECTOR_FLOATS:
        max_rows = QDRANT_MAX_MULTIVECTOR_FLOATS // spec.colbert_dim
        raise InputError(
            f"document {doc_id!r} has {rows} ColBERT rows of dimension {spec.colbert_dim} "
            f"({floats:,} floats); Qdrant refuses a multivector above "
            f"{QDRANT_MAX_MULTIVECTOR_FLOATS:,} floats per point (= {max_rows} rows at this "
            f"dimension). Split long texts with M3Encoder.encode_windows "
            f"(window_tokens <= {max_rows + 1}) and index each window as its own document"
        )


def sparse_vector(weights: Mapping[int, float]) -> models.SparseVector:
    """A Qdrant SparseVector from token id -> weight, indices sorted."""
    m = qdrant_models()
    keys = sorted(weights)
    return m.SparseVector(indices=[int(k) for k in keys], values=[float(weights[k]) for k in keys])


def to_point(
    doc: Document, emb: M3Embedding, spec: IndexSpec, fde: np.ndarray | None = None
) -> models.PointStruct:
    """The Qdrant point of a validated document and embedding (only the outputs spec stores),
    with its MUVERA encoding ``fde`` when the spec stores one."""
    m = qdrant_models()
    vector: dict[str, Any] = {}
    if spec.dense and emb.dense is not None:
        vector[spec.fields.dense] = emb.dense.astype(np.float32).tolist()
    if spec.sparse and emb.sparse is not None:
        vector[spec.fields.sparse] = sparse_vector(emb.sparse)
    payload = point_payload(doc, spec)  # checks the metadata keys first
    if spec.colbert and emb.colbert is not None:
        check_multivector_cap(spec, doc.id, int(emb.colbert.shape[0]))
        vector[spec.fields.colbert] = emb.colbert.astype(np.float32).tolist()
    vector.update(fde_vector(spec, doc.id, fde))
    return m.PointStruct(id=point_id(doc.id), vector=vector, payload=payload)


def fde_vector(spec: IndexSpec, doc_id: str, fde: np.ndarray | None) -> dict[str, list[float]]:
    """``{fields.colbert_fde: fde}`` for a spec with ``colbert_fde`` (empty otherwise).

    Raises:
        InputError: the spec stores an FDE and none (or one of another size) came with the
            document.
    """
    if spec.colbert_fde is None:
        return {}
    if fde is None or np.shape(fde) != (spec.colbert_fde.dim,):
        raise InputError(
            f"document {doc_id!r} needs a MUVERA encoding of shape ({spec.colbert_fde.dim},) "
            f"(IndexSpec.colbert_fde), got {None if fde is None else np.shape(fde)}; write "
            "through Collection.upsert, which computes it"
        )
    return {spec.fields.colbert_fde: np.asarray(fde, dtype=np.float32).tolist()}


def document_from_payload(payload: Mapping[str, Any] | None, spec: IndexSpec) -> Document:
    """The Document stored in a point's payload (inverse of :func:`to_point`)."""
    payload = payload or {}
    return Document(
        id=str(payload.get(spec.fields.id, "")),
        text=str(payload.get(spec.fields.text, "")),
        metadata=dict(payload.get(spec.fields.metadata) or {}),
    )


def embedding_from_vectors(vectors: Mapping[str, Any] | None, spec: IndexSpec) -> M3Embedding:
    """The M3Embedding of a point's vectors (inverse of :func:`to_point`)."""
    vectors = vectors or {}
    dense = vectors.get(spec.fields.dense)
    sparse = vectors.get(spec.fields.sparse)
    colbert = vectors.get(spec.fields.colbert)
    return M3Embedding(
        dense=None if dense is None else np.asarray(dense, dtype=np.float32),
        sparse=None
        if sparse is None
        else {int(i): float(v) for i, v in zip(sparse.indices, sparse.values, strict=True)},
        colbert=None if colbert is None else np.asarray(colbert, dtype=np.float32),
    )


def validate_collection(
    info: models.CollectionInfo, spec: IndexSpec, *, check_payload_indexes: bool = True
) -> list[str]:
    """Differences between an existing collection and what ``spec`` expects.

    Vectors the spec does not use are allowed (a collection may hold more). Missing payload
    indexes are not a mismatch (the connector creates them); an index of another type is.

    Args:
        info: ``QdrantClient.get_collection(name)``.
        spec: what the connector will store.
        check_payload_indexes: compare payload index types (off for local mode, which keeps
            no payload indexes).

    Returns:
        Human-readable mismatches ("dense vector 'dense': size 768, expected 1024"); empty
        when the collection fits.
    """
    m = qdrant_models()
    params = info.config.params
    vectors = params.vectors
    if vectors is None:
        vectors = {}
    problems: list[str] = []
    if not isinstance(vectors, Mapping):
        problems.append(
            "the collection has one unnamed vector; m3vdb stores named vectors "
            f"({', '.join(vectors_config(spec)) or 'none'})"
        )
        vectors = {}

    def check_dense_like(name: str, what: str, size: int, distance: Any, multi: bool) -> None:
        found = vectors.get(name)
        if found is None:
            problems.append(f"{what} '{name}': missing (vectors found: {sorted(vectors)})")
            return
        if found.size != size:
            problems.append(f"{what} '{name}': size {found.size}, expected {size}")
        if found.distance != distance:
            problems.append(f"{what} '{name}': distance {found.distance}, expected {distance}")
        config = found.multivector_config
        if multi and (config is None or config.comparator != m.MultiVectorComparator.MAX_SIM):
            problems.append(
                f"{what} '{name}': multivector comparator "
                f"{None if config is None else config.comparator}, expected max_sim"
            )
        if not multi and config is not None:
            problems.append(f"{what} '{name}': is a multivector, expected a single vector")

    if spec.dense:
        check_dense_like(
            spec.fields.dense, "dense vector", spec.dense_dim, dense_distance(spec), multi=False
        )
    if spec.colbert:
        check_dense_like(
            spec.fields.colbert, "ColBERT multivector", spec.colbert_dim, m.Distance.DOT, multi=True
        )
        found = vectors.get(spec.fields.colbert)
        if found is not None:
            storage = colbert_storage(spec)
            is_f16 = found.datatype == m.Datatype.FLOAT16
            quantization = found.quantization_config
            kind = (
                "int8"
                if isinstance(quantization, m.ScalarQuantization)
                else "binary"
                if isinstance(quantization, m.BinaryQuantization)
                else None
                if quantization is None
                else type(quantization).__name__
            )
            if is_f16 != (storage["datatype"] == "float16") or kind != storage["quantization"]:
                problems.append(
                    f"ColBERT multivector '{spec.fields.colbert}': datatype "
                    f"{found.datatype or 'float32'}, quantisation {kind or 'none'} (precision "
                    f"{_precision_of(is_f16, kind)}), expected {spec.colbert_precision}"
                )
    if spec.colbert_fde is not None:
        check_dense_like(
            spec.fields.colbert_fde,
            "ColBERT FDE vector",
            spec.colbert_fde.dim,
            m.Distance.DOT,
            multi=False,
        )
    if spec.sparse:
        sparse = params.sparse_vectors or {}
        found_sparse = sparse.get(spec.fields.sparse)
        if found_sparse is None:
            problems.append(
                f"sparse vector '{spec.fields.sparse}': missing (sparse vectors found: "
                f"{sorted(sparse)})"
            )
        elif found_sparse.modifier not in (None, m.Modifier.NONE):
            problems.append(
                f"sparse vector '{spec.fields.sparse}': modifier {found_sparse.modifier}, "
                "expected none (BGE-M3 weights are the score; IDF would change it)"
            )
    if check_payload_indexes:
        schema = info.payload_schema or {}
        for key, expected in payload_indexes(spec):
            index = schema.get(key)
            if index is not None and index.data_type != expected:
                problems.append(
                    f"payload index '{key}': type {index.data_type}, expected {expected}"
                )
    return problems


# --------------------------------------------------------------------------- filters


def compile_filter(flt: Filter | None, spec: IndexSpec, m: Any = None) -> Any:
    """The Qdrant Filter of a portable filter (keys are metadata keys: ``metadata.<key>``).

    The result is always ``Filter(must=[...])`` with ``Or`` as a nested ``Filter(should=...)``:
    the server merges a query's filter into each prefetch's field by field, and ``should``
    lists merged side by side would turn an AND of two filters into an OR.

    Semantics of ``m3vdb.schemas.filters.matches`` as Qdrant has them natively: a list-valued
    key matches a match or range condition when ANY element does (a range: one element within
    every bound), and bool and int are distinct types. An ``eq`` on a float compiles to the
    closed range [v, v] (Qdrant matches only str, int and bool exactly). One difference left:
    an int ``eq`` / ``in_`` does not match a value stored as a float (``1`` vs ``1.0``).

    ``m`` is the namespace of the filter model classes (``qdrant_client.models`` by default);
    another engine with the same classes (Filter, FieldCondition, MatchValue, MatchAny, Range)
    can pass its own.
    """
    if flt is None:
        return None
    m = m if m is not None else qdrant_models()
    return m.Filter(must=[_condition(flt, spec, m)])


def _condition(flt: Filter, spec: IndexSpec, m: Any) -> Any:
    if isinstance(flt, Eq):
        key = metadata_key(spec, flt.field)
        if isinstance(flt.value, float):
            return m.FieldCondition(key=key, range=m.Range(gte=flt.value, lte=flt.value))
        return m.FieldCondition(key=key, match=m.MatchValue(value=flt.value))
    if isinstance(flt, In):
        values = flt.values
        all_str = all(isinstance(v, str) for v in values)
        all_int = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        if all_str or all_int:
            key = metadata_key(spec, flt.field)
            return m.FieldCondition(key=key, match=m.MatchAny(any=list(values)))
        # MatchAny takes only all-str or all-int lists: mixed values become alternatives.
        return m.Filter(should=[_condition(Eq(flt.field, v), spec, m) for v in values])
    if isinstance(flt, Range):
        return m.FieldCondition(
            key=metadata_key(spec, flt.field),
            range=m.Range(gt=flt.gt, gte=flt.gte, lt=flt.lt, lte=flt.lte),
        )
    if isinstance(flt, (And, Or)):
        if not flt.clauses:
            raise InputError(f"{type(flt).__name__.lower()}_() needs at least one clause")
        parts = [_condition(c, spec, m) for c in flt.clauses]
        return m.Filter(must=parts) if isinstance(flt, And) else m.Filter(should=parts)
    raise InputError(f"not a filter: {flt!r}")


# --------------------------------------------------------------------------- shared helpers


def point_payload(doc: Document, spec: IndexSpec) -> dict[str, Any]:
    """The payload of a document's point (the one :func:`to_point` writes): original id, text,
    metadata dict. Engines with their own point class (Qdrant edge) build points from it.

    Raises:
        InputError: a metadata key no Qdrant filter could address (see :func:`metadata_key`).
    """
    check_metadata_keys(doc)
    return {
        spec.fields.id: doc.id,
        spec.fields.text: doc.text,
        spec.fields.metadata: dict(doc.metadata),
    }
