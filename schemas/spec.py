"""The index description shared by every database: what is stored, under which names,
with which metric and precision. Pure data: each database's module in ``schemas/``
translates it into that database's native schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
        """An IndexSpec whose dimensions are those of ``encoder`` (an ``M3Encoder``)."""
        dense_dim = int(getattr(encoder, "dense_dim"))  # noqa: B009 (typed as object)
        colbert_dim = int(getattr(encoder, "colbert_dim"))  # noqa: B009
        return cls(dense_dim=dense_dim, colbert_dim=colbert_dim, **options)  # type: ignore[arg-type]
