"""The index description shared by every database: what is stored, under which names,
with which metric and precision. Pure data: each database's module in ``schemas/``
translates it into that database's native schema."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from m3vdb.errors import InputError

MetadataType = Literal["keyword", "int", "float", "bool"]


@dataclass(frozen=True)
class FieldNames:
    """Names of the stored fields, configurable so that an existing collection can be used."""

    id: str = "id"
    text: str = "text"
    dense: str = "dense"
    sparse: str = "sparse"
    colbert: str = "colbert"
    metadata: str = "metadata"
    colbert_fde: str = "colbert_fde"


@dataclass(frozen=True)
class MetadataField:
    """A metadata key that is indexed (filterable) with its type."""

    name: str
    type: MetadataType = "keyword"


#: The ColBERT storage precisions (``IndexSpec.colbert_precision``), largest first.
COLBERT_PRECISIONS: tuple[str, ...] = ("float32", "float16", "int8", "binary")
ColbertPrecision = Literal["float32", "float16", "int8", "binary"]


def colbert_bytes_per_token(precision: str, dim: int) -> float:
    """Bytes one ColBERT row of ``dim`` dimensions holds at ``precision`` (the vector the
    search reads: for Qdrant's quantised precisions the quantised copy, see
    ``docs/colbert.md`` for what each database also keeps on disk)."""
    per_dim = {"float32": 4.0, "float16": 2.0, "int8": 1.0, "binary": 0.125}[precision]
    return per_dim * dim


#: The most dimensions a ColBERT FDE may have: Qdrant's limit on a dense vector (Milvus allows
#: 32,768, Elasticsearch's ``dense_vector`` 4,096: those engines refuse more when they open).
FDE_MAX_DIM = 65_536


@dataclass(frozen=True)
class ColbertFde:
    """A MUVERA first stage for ``mode="colbert"`` (fixed dimensional encodings, Dhulipala et
    al., Google 2024; the math is :mod:`m3vdb.schemas.muvera`).

    Each document's ColBERT rows are also stored as ONE dense vector of :attr:`dim`
    dimensions; a ColBERT search takes the ``candidates`` best documents by the inner product
    of that vector with the query's FDE, then reranks them by exact MaxSim.

    The defaults were chosen on the fidelity bench (``bench/colbert_fidelity.py --sweep``,
    figures in ``docs/colbert.md``): 4,096 dimensions (``k_sim=3, d_proj=8,
    repetitions=64``; the most Elasticsearch's ``dense_vector`` indexes) scored best among
    the 4,096-d configs tried (more repetitions of coarser partitions beat fewer of finer
    ones), and over 10,000 documents of a trained model's embeddings 800 FDE candidates
    reranked by MaxSim held 0.96 of the exact top 10 (200: 0.87); 1,000 is the default.

    Attributes:
        k_sim: SimHash bits per repetition: 2**k_sim buckets of token space.
        d_proj: each token is projected to this many dimensions (a random +-1 matrix) before
            it is summed into its bucket.
        repetitions: independent partitions, concatenated.
        final_dim: project the concatenation to this many dimensions (a count sketch); None
            keeps ``repetitions * 2**k_sim * d_proj``.
        candidates: documents the FDE stage hands to the MaxSim rerank (at least ``k`` are
            taken).
        seed: the seed of every random matrix; recorded with the collection, so documents and
            queries are encoded with the same matrices forever.
    """

    k_sim: int = 3
    d_proj: int = 8
    repetitions: int = 64
    final_dim: int | None = None
    candidates: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("k_sim", "d_proj", "repetitions", "candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"ColbertFde.{name} must be a positive int, got {value!r}")
        if self.k_sim > 10:
            raise InputError(
                f"ColbertFde.k_sim={self.k_sim} makes 2**{self.k_sim} buckets per repetition; "
                "use at most 10 (the paper and the bench use 3-6)"
            )
        if self.final_dim is not None and (
            isinstance(self.final_dim, bool)
            or not isinstance(self.final_dim, int)
            or self.final_dim <= 0
        ):
            raise InputError(
                f"ColbertFde.final_dim must be a positive int or None, got {self.final_dim!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"ColbertFde.seed must be an int >= 0, got {self.seed!r}")
        if self.dim > FDE_MAX_DIM:
            raise InputError(
                f"ColbertFde gives {self.dim} dimensions (repetitions * 2**k_sim * d_proj = "
                f"{self.repetitions} * {2**self.k_sim} * {self.d_proj}); no database stores "
                f"more than {FDE_MAX_DIM}: lower them or set final_dim"
            )

    @property
    def dim(self) -> int:
        """Dimensions of the stored vector."""
        if self.final_dim is not None:
            return self.final_dim
        return self.repetitions * 2**self.k_sim * self.d_proj


@dataclass(frozen=True)
class IndexSpec:
    """What a collection holds.

    Attributes:
        dense_dim: dimension of the dense vector (1024 for BGE-M3).
        colbert_dim: dimension of each ColBERT row (1024 for BGE-M3).
        dense: store the dense vector.
        sparse: store the sparse lexical weights.
        colbert: store the ColBERT multivector.
        dense_metric: "ip" (dot product; equal to cosine on BGE-M3's normalised vectors) or
            "cosine".
        colbert_precision: how ColBERT rows are stored, one of :data:`COLBERT_PRECISIONS`:
            "float32" (4 bytes a dimension), "float16" (2), "int8" (1) or "binary" (1 bit),
            each in the database's native type or quantisation (``docs/colbert.md``: Qdrant
            keeps float16 originals for the rescore of int8 / binary; Elasticsearch's
            ``rank_vectors`` element_type; Milvus's vector types). A database that cannot
            store one raises UnsupportedCapabilityError when the collection is opened.
            Recorded with the collection.
        colbert_pool_factor: token pooling at index time: each document's ColBERT rows are
            clustered (Ward hierarchical clustering) into about ``rows / factor`` groups,
            each stored as its mean, re-normalised (:func:`m3vdb.schemas.pooling.pool_rows`);
            1 stores every row. Queries are never pooled. Recorded with the collection.
        colbert_index: also build an ANN index over ColBERT rows (needed only when
            ``mode="colbert"`` must scale beyond a scan; rerank needs none).
        max_colbert_rows: refuse documents with more ColBERT rows than this (use the encoder's
            windows to split long texts); databases may have a lower hard cap.
        metadata_fields: metadata keys to index for filtering.
        fields: stored field names.
        model: the model (checkpoint) whose embeddings the collection holds, as the encoder
            names it (``IndexSpec.for_encoder``); None when unknown. Recorded with the
            collection, never compared when validating one.
        colbert_fde: a MUVERA first stage for ``mode="colbert"`` (:class:`ColbertFde`):
            each document's fixed dimensional encoding is stored as a dense vector
            (``fields.colbert_fde``); a ColBERT search takes candidates by it and reranks them
            by exact MaxSim. None: ``mode="colbert"`` scans every document's rows.
    """

    dense_dim: int = 1024
    colbert_dim: int = 1024
    dense: bool = True
    sparse: bool = True
    colbert: bool = True
    dense_metric: Literal["ip", "cosine"] = "ip"
    colbert_precision: ColbertPrecision = "float32"
    colbert_index: bool = False
    max_colbert_rows: int = 1024
    metadata_fields: tuple[MetadataField, ...] = ()
    fields: FieldNames = field(default_factory=FieldNames)
    model: str | None = None
    colbert_fde: ColbertFde | None = None
    colbert_pool_factor: int = 1

    def __post_init__(self) -> None:
        if self.colbert_precision not in COLBERT_PRECISIONS:
            raise InputError(
                f"IndexSpec.colbert_precision is {self.colbert_precision!r}; use one of "
                + ", ".join(repr(p) for p in COLBERT_PRECISIONS)
            )
        factor = self.colbert_pool_factor
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise InputError(
                f"IndexSpec.colbert_pool_factor must be an int >= 1 (1: no pooling), got {factor!r}"
            )
        if self.colbert_fde is not None:
            if not isinstance(self.colbert_fde, ColbertFde):
                raise InputError(
                    "IndexSpec.colbert_fde takes a ColbertFde (ColbertFde() for the "
                    f"defaults) or None, got {self.colbert_fde!r}"
                )
            if not self.colbert:
                raise InputError(
                    "IndexSpec.colbert_fde encodes the ColBERT rows, but colbert=False; store "
                    "ColBERT (colbert=True) or leave colbert_fde out"
                )
        if not (self.dense or self.sparse or self.colbert):
            raise ValueError(
                "IndexSpec stores nothing: enable at least one of dense, sparse, colbert"
            )
        if self.dense_dim <= 0 or self.colbert_dim <= 0:
            raise ValueError(
                f"IndexSpec dimensions must be positive, got dense_dim={self.dense_dim}, "
                f"colbert_dim={self.colbert_dim}"
            )
        if self.max_colbert_rows <= 0:
            raise ValueError(f"max_colbert_rows must be positive, got {self.max_colbert_rows}")

    @classmethod
    def for_dense_embeddings(cls, dim: int) -> IndexSpec:
        """A dense-only collection for another embedding model's vectors (a LangChain
        ``Embeddings``, a LlamaIndex embed model, Haystack embedders): metric cosine, because
        such vectors need not be normalised (BGE-M3's are, so ``ip`` is its default)."""
        return cls(dense_dim=dim, sparse=False, colbert=False, dense_metric="cosine")

    @property
    def colbert_bytes_per_token(self) -> float:
        """Bytes of one stored ColBERT row at :attr:`colbert_precision` (the vector a search
        reads; 0 without ColBERT)."""
        if not self.colbert:
            return 0.0
        return colbert_bytes_per_token(self.colbert_precision, self.colbert_dim)

    @property
    def default_mode(self) -> Literal["dense", "sparse", "colbert", "hybrid"]:
        """The search mode a store uses when none is asked: ``hybrid`` when dense and sparse
        are stored, else the one signal stored."""
        if self.dense and self.sparse:
            return "hybrid"
        return "dense" if self.dense else "sparse" if self.sparse else "colbert"

    def query_outputs(self, mode: str, *, rerank: bool = True) -> dict[str, bool]:
        """Which outputs a query in ``mode`` needs (``encoder.encode(**outputs)``): dense for
        dense and hybrid, sparse for sparse and hybrid, ColBERT for colbert and for a hybrid
        search reranked by MaxSim (when the collection stores ColBERT)."""
        return {
            "dense": mode in ("dense", "hybrid"),
            "sparse": mode in ("sparse", "hybrid"),
            "colbert": mode == "colbert" or (mode == "hybrid" and rerank and self.colbert),
        }

    @classmethod
    def for_encoder(cls, encoder: object, **options: object) -> IndexSpec:
        """An IndexSpec whose dimensions (and ``model``) are those of ``encoder``.

        ``model`` is the encoder's ``model_name`` (what ``RemoteEncoder`` exposes), else its
        ``model_path`` (``M3Encoder``'s checkpoint path or hub id), else None; an explicit
        ``model=`` option wins.
        """
        dense_dim = int(getattr(encoder, "dense_dim"))  # noqa: B009 (typed as object)
        colbert_dim = int(getattr(encoder, "colbert_dim"))  # noqa: B009
        if "model" not in options:
            options["model"] = model_of(encoder)
        return cls(dense_dim=dense_dim, colbert_dim=colbert_dim, **options)  # type: ignore[arg-type]

    def to_record(self) -> dict[str, Any]:
        """The spec as a JSON-able dict (what a collection records about itself);
        :meth:`from_record` is its inverse."""
        record = asdict(self)
        record["metadata_fields"] = [asdict(f) for f in self.metadata_fields]
        return record

    @classmethod
    def from_record(cls, record: Any) -> IndexSpec:
        """The spec a collection recorded (:meth:`to_record`). Unknown keys (written by a newer
        m3vdb) are ignored.

        Raises:
            ValueError: the record is not a dict of a valid spec.
        """
        if not isinstance(record, dict):
            raise ValueError(f"an IndexSpec record is a dict, got {type(record).__name__}")
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in record.items() if k in known}
        try:
            if "fields" in values:
                values["fields"] = FieldNames(**values["fields"])
            if isinstance(values.get("colbert_fde"), dict):
                values["colbert_fde"] = ColbertFde(**values["colbert_fde"])
            if "metadata_fields" in values:
                values["metadata_fields"] = tuple(
                    MetadataField(**f) for f in values["metadata_fields"]
                )
            return cls(**values)
        except (TypeError, InputError) as exc:
            raise ValueError(f"not an IndexSpec record: {record!r:.200} ({exc})") from None


def model_of(encoder: object) -> str | None:
    """The model an encoder names: ``model_name`` (``M3Encoder``: the hub id or directory it
    was given; ``RemoteEncoder``: the server's model), else ``model_path``, else None."""
    for attribute in ("model_name", "model_path"):
        value = getattr(encoder, attribute, None)
        if value is not None:
            return str(value)
    return None
