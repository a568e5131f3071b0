"""The one shared BGE-M3 encoder: dense, sparse and ColBERT outputs from one forward pass,
equal to FlagEmbedding's ``BGEM3FlagModel`` on the same checkpoint."""

from encoder.data import Document, Hit, M3Embedding, WindowEmbedding
from encoder.errors import (
    BackendError,
    CheckpointError,
    CollectionNotFoundError,
    InputError,
    M3VDBError,
    MissingDependencyError,
    SchemaMismatchError,
    UnsupportedCapabilityError,
)
from encoder.model import M3Encoder
from encoder.scoring import (
    colbert_maxsim,
    colbert_score,
    combined_score,
    dense_score,
    lexical_score,
    sparse_score,
)

__all__ = [
    "BackendError",
    "CheckpointError",
    "CollectionNotFoundError",
    "Document",
    "Hit",
    "InputError",
    "M3Embedding",
    "M3Encoder",
    "M3VDBError",
    "MissingDependencyError",
    "SchemaMismatchError",
    "UnsupportedCapabilityError",
    "WindowEmbedding",
    "colbert_maxsim",
    "colbert_score",
    "combined_score",
    "dense_score",
    "lexical_score",
    "sparse_score",
]
