"""IndexSpec -> Elasticsearch: the index mapping, documents <-> ``_source``, the filter
compiler, the capabilities of a cluster and the score conversions. Pure functions: nothing here
talks to a server (the request bodies of searches are built in
``m3vdb.connectors.elasticsearch.queries``). The mapping is built with the typed classes of
``elasticsearch.dsl``; it has no typed class for dynamic templates, which are plain dicts.

Layout of an index (one Elasticsearch document per m3vdb document, so every write of a
document is atomic: its text, metadata and three representations are one Lucene document):

- ``id`` keyword (the document id, also the ``_id``), ``text`` text (analysed: BM25 is available
  as a fourth hybrid signal), ``metadata`` object whose declared keys are typed (keyword, long,
  double, boolean) and whose other keys are mapped by dynamic templates (strings -> keyword,
  floating point -> double), so that every metadata key filters exactly. The object has
  ``subobjects: false`` (a key ``a.b`` is one literal field, as on every backend) and the
  mapping ``date_detection: false`` (a first value "2024-05-01" never makes a key a date).
- ``dense``: ``dense_vector``, ``similarity`` dot_product (``dense_metric="ip"``) or cosine,
  ``index_options.type`` explicit (default ``hnsw``: float vectors, so knn scores are the exact
  float dot; Elasticsearch 9.1+ would otherwise pick 1-bit ``bbq_hnsw`` for 1024-d vectors).
  Elasticsearch reports ``(1 + dot) / 2`` for both similarities; :func:`dense_from_es` inverts it.
- ``sparse``: ``sparse_vector``, keys = token ids as strings, ``index_options.prune`` false where
  the cluster has the option (8.19 / 9.1+ prune by default). Each stored weight keeps 9
  significant bits (Lucene's FeatureField keeps the float's top 16 bits:
  :func:`stored_sparse_weight`).
- ``colbert``: ``rank_vectors`` (9.0+, Enterprise or trial licence, no ANN index), scored by the
  painless ``maxSimDotProduct`` (the SUM over query rows of the best dot). Elasticsearch refuses
  negative scores, so the script returns ``exp(maxsim / n_query_rows)`` (always > 0, monotonic)
  and :func:`colbert_from_es` inverts it exactly up to float32 rounding.
  ``spec.colbert_precision`` picks the ``element_type`` (:data:`RANK_VECTORS_ELEMENT`):
  ``float`` for float32 and float16 (rank_vectors has no float16; newer clusters have
  bfloat16, not used), ``byte`` for int8 (each value ``round(127 x)``; Elasticsearch's byte
  MaxSim takes byte query rows only, so the query is quantised the same way and the script
  divides by 127**2) and ``bit`` for binary (one sign bit a dimension, stored as hex; the query
  stays float: Elasticsearch's float-by-bit product sums the query values where a bit is set,
  so ``(2 s - sum(q)) / sqrt(dim)`` is the dot with the +-1/sqrt(dim) row; no float originals
  are kept, nothing rescores). :func:`colbert_source` and :func:`colbert_query_params`.
- Vectors are excluded from ``_source``: searches and rescoring read the indexed values and doc
  values, and a ColBERT matrix in JSON would multiply the stored size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from m3vdb.errors import (
    InputError,
    UnsupportedCapabilityError,
)
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.filters import And, Eq, Filter, In, Or, Range
from m3vdb.schemas.optional import import_optional
from m3vdb.schemas.options import ElasticsearchOptions
from m3vdb.schemas.spec import IndexSpec, MetadataType
from m3vdb.schemas.versions import parse_version

HybridMethod = Literal["retrievers", "client_fusion"]

ID_MAX_BYTES = 512  # Elasticsearch's limit on _id
PAID_LICENCES = frozenset({"enterprise", "trial"})  # rrf, linear, rank_vectors: ENTERPRISE mode
RANK_VECTORS_SINCE = (9, 0, 0)
RETRIEVERS_SINCE = (9, 0, 0)  # rrf + linear + rescorer retrievers all present
SPARSE_INDEX_OPTIONS_SINCE = (9, 1, 0)  # sparse_vector index_options (and default pruning)

_METADATA_TYPES: dict[MetadataType, str] = {
    "keyword": "Keyword",
    "int": "Long",
    "float": "Double",
    "bool": "Boolean",
}
_INDEX_NAME_FORBIDDEN = re.compile(r'[\\/*?"<>| ,#:A-Z]')


def dsl() -> Any:
    """``(field, query, types)`` modules of ``elasticsearch.dsl``, or MissingDependencyError."""
    modules = [
        import_optional(
            f"elasticsearch.dsl.{name}",
            package="elasticsearch",
            extra="elasticsearch",
            purpose="The Elasticsearch connector (client >= 8.18)",
        )
        for name in ("field", "query", "types")
    ]
    return tuple(modules)


# --------------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class ElasticsearchCapabilities:
    """What the cluster can do, detected once (``GET /`` and ``GET _license``) and held as data.

    Attributes:
        version: the version number the cluster reported (``"9.1.4"``).
        licence: the licence type (``basic``, ``trial``, ``enterprise``, ...); ``unknown`` when
            ``GET _license`` was refused.
        licence_active: whether the licence status is ``active``.
    """

    version: str
    licence: str
    licence_active: bool = True

    @classmethod
    def from_responses(
        cls, info: Mapping[str, Any], licence: Mapping[str, Any] | None
    ) -> ElasticsearchCapabilities:
        """From the bodies of ``GET /`` and ``GET _license`` (None when the latter failed)."""
        version = str((info.get("version") or {}).get("number", "unknown"))
        lic = (licence or {}).get("license") or {}
        return cls(
            version=version,
            licence=str(lic.get("type", "unknown")).lower(),
            licence_active=str(lic.get("status", "active" if lic else "unknown")) == "active",
        )

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return parse_version(self.version) or (0, 0, 0)

    @property
    def paid(self) -> bool:
        """An active Enterprise or trial licence (what rrf, linear and rank_vectors need)."""
        return self.licence_active and self.licence in PAID_LICENCES

    @property
    def rank_vectors(self) -> bool:
        return self.paid and self.version_tuple >= RANK_VECTORS_SINCE

    @property
    def retrievers(self) -> bool:
        """rrf and linear retrievers (and the rescorer retriever over them)."""
        return self.paid and self.version_tuple >= RETRIEVERS_SINCE

    @property
    def sparse_index_options(self) -> bool:
        return self.version_tuple >= SPARSE_INDEX_OPTIONS_SINCE

    @property
    def hybrid_method(self) -> HybridMethod:
        """``retrievers``: one ``search`` with rrf/linear retrievers; ``client_fusion``: one
        ``_msearch`` (a request per signal, one round trip) fused by m3vdb with the same
        formulas (needs no paid feature)."""
        return "retrievers" if self.retrievers else "client_fusion"

    def describe(self) -> str:
        state = "" if self.licence_active else " (not active)"
        return f"Elasticsearch {self.version} with a {self.licence} licence{state}"

    def require_rank_vectors(self) -> None:
        """Raises UnsupportedCapabilityError naming the version and the licence."""
        if self.rank_vectors:
            return
        needs = []
        if self.version_tuple < RANK_VECTORS_SINCE:
            needs.append("Elasticsearch >= 9.0")
        if not self.paid:
            needs.append("an active Enterprise or trial licence")
        raise UnsupportedCapabilityError(
            f"ColBERT vectors need the rank_vectors field type, which needs {' and '.join(needs)}; "
            f"this cluster is {self.describe()}. Open the index with IndexSpec(colbert=False), "
            "or start a trial (POST _license/start_trial?acknowledge=true) or upgrade the licence"
        )


# --------------------------------------------------------------------------- mapping


def check_index_name(name: str) -> str:
    """Elasticsearch's index-name rules, as an InputError before any request."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or name[0] in "-_+"
        or _INDEX_NAME_FORBIDDEN.search(name)
        or len(name.encode("utf-8")) > 255
    ):
        raise InputError(
            f"{name!r} is not a valid Elasticsearch index name: use lowercase letters, digits "
            "and '-', '_', '.', not starting with '-', '_' or '+', at most 255 bytes"
        )
    return name


def metadata_path(spec: IndexSpec, key: str) -> str:
    """The field of the LITERAL metadata key ``key``: ``metadata.<key>``.

    The ``metadata`` object is mapped with ``subobjects: false`` (see :func:`mapping`), so a
    key ``a.b`` is one leaf field named ``a.b``, not a field ``b`` inside an object ``a``, and
    the path ``metadata.a.b`` names exactly it.

    Raises:
        InputError: a key Elasticsearch refuses as a field name (see
            :func:`check_metadata_key`); the same error at write time and query time.
    """
    return f"{spec.fields.metadata}.{check_metadata_key(key)}"


def check_metadata_key(key: str) -> str:
    """``key`` if Elasticsearch accepts it as a field name; else InputError.

    Elasticsearch splits a field name on ``.`` while parsing a document, even under
    ``subobjects: false``, and refuses a name with an empty or blank part: one that is
    whitespace only, starts or ends with ``.``, or holds ``..``.
    """
    if not isinstance(key, str) or not key or any(not part.strip() for part in key.split(".")):
        raise InputError(
            f"metadata key {key!r} cannot be an Elasticsearch field name: a key must not be "
            "blank, start or end with '.', or hold '..' or '. .'; rename the key"
        )
    return key


def dense_similarity(spec: IndexSpec) -> str:
    return "dot_product" if spec.dense_metric == "ip" else "cosine"


def _typed_field(name: str, fallback_type: str, **params: Any) -> dict[str, Any]:
    """``elasticsearch.dsl.field.<name>(**params).to_dict()``; a plain dict on clients whose
    dsl has no such class (rank_vectors arrived in the client after 9.0)."""
    field, _, _ = dsl()
    cls = getattr(field, name, None)
    if cls is None:
        return {"type": fallback_type, **params}
    out: dict[str, Any] = cls(**params).to_dict()
    return out


def dense_index_options(options: ElasticsearchOptions) -> dict[str, Any]:
    _, _, types = dsl()
    params: dict[str, Any] = {"type": options.dense_index_type}
    if options.hnsw_m is not None:
        params["m"] = options.hnsw_m
    if options.hnsw_ef_construction is not None:
        params["ef_construction"] = options.hnsw_ef_construction
    out: dict[str, Any] = types.DenseVectorIndexOptions(**params).to_dict()
    return out


def sparse_index_options() -> dict[str, Any]:
    _, _, types = dsl()
    cls = getattr(types, "SparseVectorIndexOptions", None)
    return cls(prune=False).to_dict() if cls is not None else {"prune": False}


def mapping(
    spec: IndexSpec, options: ElasticsearchOptions, caps: ElasticsearchCapabilities
) -> dict[str, Any]:
    """The ``mappings`` body of a new index for ``spec``."""
    names = spec.fields
    text_params = {} if options.text_analyzer is None else {"analyzer": options.text_analyzer}
    metadata_properties = {
        f.name: _typed_field(_METADATA_TYPES[f.type], f.type) for f in spec.metadata_fields
    }
    properties: dict[str, Any] = {
        names.id: _typed_field("Keyword", "keyword"),
        names.text: _typed_field("Text", "text", **text_params),
        # subobjects false: a metadata key is a literal field name ("a.b" is one field), as
        # on every other backend; without it "a.b" and {"a": {"b": ...}} would be one field.
        names.metadata: {
            "type": "object",
            "dynamic": True,
            "subobjects": False,
            "properties": metadata_properties,
        },
    }
    if spec.dense:
        properties[names.dense] = _typed_field(
            "DenseVector",
            "dense_vector",
            dims=spec.dense_dim,
            similarity=dense_similarity(spec),
            index=True,
            index_options=dense_index_options(options),
        )
    if spec.sparse:
        params = {"index_options": sparse_index_options()} if caps.sparse_index_options else {}
        properties[names.sparse] = _typed_field("SparseVector", "sparse_vector", **params)
    if spec.colbert:
        # No float16 element type for rank_vectors: float32 rows are stored (more precise).
        properties[names.colbert] = _typed_field(
            "RankVectors",
            "rank_vectors",
            dims=spec.colbert_dim,
            element_type=RANK_VECTORS_ELEMENT[spec.colbert_precision],
        )
    if spec.colbert_fde is not None:
        properties[names.colbert_fde] = fde_field(spec)
    vectors = [
        n
        for n, on in (
            (names.dense, spec.dense),
            (names.sparse, spec.sparse),
            (names.colbert, spec.colbert),
            (names.colbert_fde, spec.colbert_fde is not None),
        )
        if on
    ]
    path = f"{names.metadata}.*"
    return {
        # Date detection would turn an undeclared key whose first value looks like a date
        # ("2024-05-01") into a date field and refuse every later non-date string in it; the
        # dynamic templates below then map every string to keyword.
        "date_detection": False,
        # No typed class for dynamic templates in elasticsearch.dsl: plain dicts.
        "dynamic_templates": [
            {
                "m3vdb_metadata_strings": {
                    "path_match": path,
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword"},
                }
            },
            {
                "m3vdb_metadata_floats": {
                    "path_match": path,
                    "match_mapping_type": "double",
                    "mapping": {"type": "double"},
                }
            },
        ],
        "_source": {"excludes": vectors},
        # What the IndexSpec declared and the field types cannot show (rank_vectors has no
        # float16: float16 ColBERT rows are stored as float32), checked when reopening.
        "_meta": {"m3vdb": spec_meta(spec)},
        "properties": properties,
    }


#: ``rank_vectors`` element_type per ``IndexSpec.colbert_precision``.
RANK_VECTORS_ELEMENT = {"float32": "float", "float16": "float", "int8": "byte", "binary": "bit"}
#: int8 rows are stored as ``round(BYTE_SCALE * x)`` (BGE-M3's rows are unit-length: |x| <= 1).
BYTE_SCALE = 127.0


def colbert_source(spec: IndexSpec, rows: np.ndarray) -> list[Any]:
    """ColBERT rows as a ``rank_vectors`` field of the spec's element_type takes them: floats,
    signed bytes ``round(127 x)``, or one hex string of sign bits per row (bit i set when
    ``x_i > 0``, most significant bit first)."""
    element = RANK_VECTORS_ELEMENT[spec.colbert_precision]
    rows = np.asarray(rows, dtype=np.float32)
    if element == "byte":
        out: list[Any] = quantize_bytes(rows).tolist()
        return out
    if element == "bit":
        return [bytes(row).hex() for row in np.packbits(rows > 0, axis=1)]
    out = rows.tolist()
    return out


def quantize_bytes(rows: np.ndarray) -> np.ndarray:
    """``round(127 x)`` as int8 (what an int8 ``rank_vectors`` stores, and its query)."""
    return np.clip(np.rint(np.asarray(rows) * BYTE_SCALE), -127, 127).astype(np.int8)


def colbert_query_params(spec: IndexSpec, rows: np.ndarray) -> dict[str, Any]:
    """The MaxSim script's params for query ``rows``: ``query_vector`` in the form the field's
    element_type takes, and ``scale`` / ``shift`` such that ``maxSimDotProduct * scale +
    shift`` approximates the float MaxSim (1 and 0 for float rows)."""
    element = RANK_VECTORS_ELEMENT[spec.colbert_precision]
    rows = np.asarray(rows, dtype=np.float32)
    params: dict[str, Any] = {"n": len(rows)}
    if element == "byte":
        params.update(
            query_vector=quantize_bytes(rows).tolist(), scale=1.0 / BYTE_SCALE**2, shift=0.0
        )
    elif element == "bit":
        root = math.sqrt(spec.colbert_dim)
        params.update(query_vector=rows.tolist(), scale=2.0 / root, shift=-float(rows.sum()) / root)
    else:
        params["query_vector"] = rows.tolist()
    return params


#: Elasticsearch's most dimensions of an indexed dense_vector.
DENSE_VECTOR_MAX_DIMS = 4096


def fde_field(spec: IndexSpec) -> dict[str, Any]:
    """The ``dense_vector`` of the MUVERA first stage: ``max_inner_product`` (FDEs are not
    unit-length, which ``dot_product`` requires), plain ``hnsw`` (set explicitly: 9.1+ would
    pick 1-bit ``bbq_hnsw``).

    Raises:
        InputError: the FDE has more dimensions than a dense_vector takes.
    """
    assert spec.colbert_fde is not None
    dims = spec.colbert_fde.dim
    if dims > DENSE_VECTOR_MAX_DIMS:
        raise InputError(
            f"IndexSpec.colbert_fde gives {dims} dimensions; Elasticsearch's dense_vector takes "
            f"at most {DENSE_VECTOR_MAX_DIMS}: lower repetitions, k_sim or d_proj, or set "
            f"ColbertFde(final_dim={DENSE_VECTOR_MAX_DIMS})"
        )
    return _typed_field(
        "DenseVector",
        "dense_vector",
        dims=dims,
        similarity=FDE_SIMILARITY,
        index=True,
        index_options={"type": "hnsw"},
    )


FDE_SIMILARITY = "max_inner_product"


def spec_meta(spec: IndexSpec) -> dict[str, Any]:
    return {"colbert_precision": spec.colbert_precision}


def index_settings(options: ElasticsearchOptions) -> dict[str, Any]:
    settings: dict[str, Any] = {"number_of_shards": options.number_of_shards}
    if options.number_of_replicas is not None:
        settings["number_of_replicas"] = options.number_of_replicas
    return settings


def validate_mapping(
    found: Mapping[str, Any], spec: IndexSpec, options: ElasticsearchOptions
) -> list[str]:
    """Differences between an existing index's ``mappings`` and what ``spec`` expects.

    Fields the spec does not use are allowed. Returns readable mismatches; empty if it fits.
    """
    props = found.get("properties") or {}
    names = spec.fields
    problems: list[str] = []

    def check(name: str, what: str, expected: Mapping[str, Any]) -> None:
        got = props.get(name)
        if got is None:
            problems.append(f"{what} field '{name}': missing (fields found: {sorted(props)})")
            return
        for key, want in expected.items():
            have = got.get(key)
            if key == "index_options":
                have = (have or {}).get("type")
            if have != want:
                problems.append(f"{what} field '{name}': {key} {have!r}, expected {want!r}")

    check(names.text, "text", {"type": "text"})
    if spec.dense:
        check(
            names.dense,
            "dense",
            {
                "type": "dense_vector",
                "dims": spec.dense_dim,
                "similarity": dense_similarity(spec),
                "index_options": options.dense_index_type,
            },
        )
    if spec.sparse:
        check(names.sparse, "sparse", {"type": "sparse_vector"})
    if spec.colbert:
        colbert_expected: dict[str, Any] = {"type": "rank_vectors", "dims": spec.colbert_dim}
        if spec.colbert_precision in ("int8", "binary") or (
            (props.get(names.colbert) or {}).get("element_type") not in (None, "float")
        ):
            colbert_expected["element_type"] = RANK_VECTORS_ELEMENT[spec.colbert_precision]
        check(names.colbert, "ColBERT", colbert_expected)
    if spec.colbert_fde is not None:
        check(
            names.colbert_fde,
            "ColBERT FDE",
            {
                "type": "dense_vector",
                "dims": spec.colbert_fde.dim,
                "similarity": FDE_SIMILARITY,
            },
        )
    declared = (found.get("_meta") or {}).get("m3vdb") or {}
    for key, want in spec_meta(spec).items():
        if spec.colbert and key in declared and declared[key] != want:
            problems.append(f"ColBERT {key}: {declared[key]!r}, expected {want!r}")
    if str(found.get("date_detection", True)).lower() != "false":
        problems.append(
            "date_detection is on: a metadata string that looks like a date would make its key "
            "a date field (index created by an older m3vdb: reindex into a new index)"
        )
    metadata_object = props.get(names.metadata) or {}
    if str(metadata_object.get("subobjects", True)).lower() != "false":
        problems.append(
            f"object field '{names.metadata}': subobjects {metadata_object.get('subobjects')!r}, "
            "expected false (metadata keys with '.' would be split into sub-objects; index "
            "created by an older m3vdb: reindex into a new index)"
        )
    meta = metadata_object.get("properties") or {}
    for f in spec.metadata_fields:
        want = _METADATA_TYPES[f.type].lower()
        got = (meta.get(f.name) or {}).get("type")
        if got is not None and got != want:
            problems.append(f"metadata field '{f.name}': type {got!r}, expected {want!r}")
    return problems


# --------------------------------------------------------------------------- documents


def check_document(doc: Document, emb: M3Embedding, spec: IndexSpec) -> None:
    """What Elasticsearch would refuse mid-batch, refused before the batch is written."""
    for key in doc.metadata:
        try:
            check_metadata_key(key)
        except InputError as exc:
            raise InputError(f"document {doc.id!r}: {exc}") from None
    if len(doc.id.encode("utf-8")) > ID_MAX_BYTES:
        raise InputError(
            f"document id {doc.id[:40]!r}... is longer than Elasticsearch's {ID_MAX_BYTES}-byte "
            "_id limit; use shorter ids"
        )
    if spec.dense and spec.dense_metric == "ip" and emb.dense is not None:
        # dot_product refuses vectors whose squared norm is off 1 by more than 1e-4.
        squared = float(np.dot(emb.dense.astype(np.float64), emb.dense.astype(np.float64)))
        if abs(squared - 1.0) > 1e-4:
            raise InputError(
                f"document {doc.id!r}: dense vector has norm {math.sqrt(squared):.6f}; "
                "Elasticsearch's dot_product similarity needs unit-length vectors. Normalise "
                "them or use IndexSpec(dense_metric='cosine')"
            )


def sparse_source(weights: Mapping[int, float]) -> dict[str, float]:
    """A sparse_vector value: token id (as a string key) -> weight."""
    return {str(int(t)): float(w) for t, w in weights.items()}


def document_source(
    doc: Document, emb: M3Embedding, spec: IndexSpec, fde: np.ndarray | None = None
) -> dict[str, Any]:
    """The ``_source`` written for a validated document and embedding (with its MUVERA
    encoding ``fde`` when the spec stores one)."""
    names = spec.fields
    source: dict[str, Any] = {
        names.id: doc.id,
        names.text: doc.text,
        names.metadata: dict(doc.metadata),
    }
    if spec.dense and emb.dense is not None:
        source[names.dense] = np.asarray(emb.dense, dtype=np.float32).tolist()
    if spec.sparse and emb.sparse is not None:
        source[names.sparse] = sparse_source(emb.sparse)
    if spec.colbert and emb.colbert is not None:
        source[names.colbert] = colbert_source(spec, emb.colbert)
    if spec.colbert_fde is not None:
        if fde is None or np.shape(fde) != (spec.colbert_fde.dim,):
            raise InputError(
                f"document {doc.id!r} needs a MUVERA encoding of shape "
                f"({spec.colbert_fde.dim},) (IndexSpec.colbert_fde), got "
                f"{None if fde is None else np.shape(fde)}; write through Collection.upsert, "
                "which computes it"
            )
        source[names.colbert_fde] = np.asarray(fde, dtype=np.float32).tolist()
    return source


def source_fields(spec: IndexSpec) -> list[str]:
    """What searches and gets read back from ``_source``."""
    return [spec.fields.id, spec.fields.text, spec.fields.metadata]


def document_from_hit(hit: Mapping[str, Any], spec: IndexSpec) -> Document:
    source = hit.get("_source") or {}
    return Document(
        id=str(source.get(spec.fields.id, hit.get("_id", ""))),
        text=str(source.get(spec.fields.text, "")),
        metadata=dict(source.get(spec.fields.metadata) or {}),
    )


def stored_sparse_weight(weight: float) -> float:
    """The weight a sparse_vector field keeps of ``weight``: Lucene's FeatureField stores the
    float's top 16 bits (sign 0, 8 exponent, 8 mantissa bits) as a term frequency, truncating:
    9 significant bits, a relative error below 2^-8."""
    bits = np.array([weight], dtype=np.float32).view(np.uint32)
    return float(((bits >> 15) << 15).view(np.float32)[0])


# --------------------------------------------------------------------------- scores


def dense_from_es(score: float) -> float:
    """The dot product (or cosine) of Elasticsearch's ``(1 + similarity) / 2`` knn score."""
    return 2.0 * float(score) - 1.0


def dense_to_es(similarity: float) -> float:
    return (1.0 + similarity) / 2.0


def colbert_from_es(score: float, query_rows: int) -> float:
    """MaxSim (SUM over query rows) of the ``exp(maxsim / n)`` the script returns."""
    return query_rows * math.log(float(score))


# --------------------------------------------------------------------------- filters


def compile_filter(flt: Filter | None, spec: IndexSpec) -> list[dict[str, Any]]:
    """The ``bool.filter`` clauses of a portable filter over ``metadata.<key>`` (empty: none).

    Semantics of ``m3vdb.schemas.filters.matches``: Elasticsearch indexes a list as the set of
    its elements, so ``term`` / ``terms`` match a list holding a wanted element and ``range``
    a list holding ONE element within all bounds (each value is its own point). A range on a
    key declared ``keyword`` or ``bool`` is refused (Elasticsearch would compare strings).

    JSON types: on a key declared ``bool`` only boolean values can match, on one declared
    ``int`` / ``float`` only numbers (``True`` is not ``1``): other values are dropped from
    the clause (``match_none`` when none is left), since Elasticsearch would refuse to parse
    them (400) or coerce them. On an undeclared key the dynamic mapping decides, and such a
    mismatch is refused by Elasticsearch (an error, not a silent match).
    """
    if flt is None:
        return []
    return [_clause(flt, spec).to_dict()]


def _clause(flt: Filter, spec: IndexSpec) -> Any:
    _, q, _ = dsl()
    declared = {f.name: f.type for f in spec.metadata_fields}
    if isinstance(flt, (Eq, In)):
        values = [flt.value] if isinstance(flt, Eq) else list(flt.values)
        kept = [v for v in values if _fits(declared.get(flt.field), v)]
        if not kept:
            return q.MatchNone()
        if isinstance(flt, Eq):
            return q.Term(**{metadata_path(spec, flt.field): kept[0]})
        return q.Terms(**{metadata_path(spec, flt.field): kept})
    if isinstance(flt, Range):
        if declared.get(flt.field) in ("keyword", "bool"):
            raise InputError(
                f"range filter on metadata key {flt.field!r}, declared {declared[flt.field]!r}; "
                "ranges apply to int and float keys"
            )
        bounds = {op: v for op in ("gt", "gte", "lt", "lte") if (v := getattr(flt, op)) is not None}
        return q.Range(**{metadata_path(spec, flt.field): bounds})
    if isinstance(flt, (And, Or)):
        if not flt.clauses:
            raise InputError(f"{type(flt).__name__.lower()}_() needs at least one clause")
        parts = [_clause(c, spec) for c in flt.clauses]
        if isinstance(flt, And):
            return q.Bool(filter=parts)
        return q.Bool(should=parts, minimum_should_match=1)
    raise InputError(f"not a filter: {flt!r}")


def _fits(declared: str | None, value: Any) -> bool:
    """Whether a filter value can equal a value of a key declared ``declared`` (None: any)."""
    if declared == "bool":
        return isinstance(value, bool)
    if declared in ("int", "float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True
