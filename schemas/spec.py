"""The index description shared by every database: what is stored, under which names,
with which metric and precision. Pure data: each database's module in ``schemas/``
translates it into that database's native schema."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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


@dataclass(frozen=True)
class MetadataField:
    """A metadata key that is indexed (filterable) with its type."""

    name: str
    type: MetadataType = "keyword"


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
        colbert_precision: "float32" or "float16" storage of ColBERT rows, where the database
            supports the choice.
        colbert_index: also build an ANN index over ColBERT rows (needed only when
            ``mode="colbert"`` must scale beyond a scan; rerank needs none).
        max_colbert_rows: refuse documents with more ColBERT rows than this (use the encoder's
            windows to split long texts); databases may have a lower hard cap.
        metadata_fields: metadata keys to index for filtering.
        fields: stored field names.
        model: the model (checkpoint) whose embeddings the collection holds, as the encoder
            names it (``IndexSpec.for_encoder``); None when unknown. Recorded with the
            collection, never compared when validating one.
    """

    dense_dim: int = 1024
    colbert_dim: int = 1024
    dense: bool = True
    sparse: bool = True
    colbert: bool = True
    dense_metric: Literal["ip", "cosine"] = "ip"
    colbert_precision: Literal["float32", "float16"] = "float32"
    colbert_index: bool = False
    max_colbert_rows: int = 1024
    metadata_fields: tuple[MetadataField, ...] = ()
    fields: FieldNames = field(default_factory=FieldNames)
    model: str | None = None

    def __post_init__(self) -> None:
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
            if "metadata_fields" in values:
                values["metadata_fields"] = tuple(
                    MetadataField(**f) for f in values["metadata_fields"]
                )
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"not an IndexSpec record: {record!r:.200} ({exc})") from None


def model_of(encoder: object) -> str | None:
    """The model an encoder names: ``model_name`` (``M3Encoder``: the hub id or directory it
    was given; ``RemoteEncoder``: the server's model), else ``model_path``, else None."""
    for attribute in ("model_name", "model_path"):
        value = getattr(encoder, attribute, None)
        if value is not None:
            return str(value)
    return None
