"""The one shared BGE-M3 encoder: dense, sparse and ColBERT outputs from one forward pass,
equal to FlagEmbedding's ``BGEM3FlagModel`` on the same checkpoint.

Depends on ``m3vdb.schemas`` (the data model and errors) and torch/transformers.
"""

from m3vdb.encoder.model import M3Encoder
from m3vdb.schemas.data import M3Embedding, WindowEmbedding
from m3vdb.schemas.scoring import (
    colbert_maxsim,
    colbert_score,
    combined_score,
    dense_score,
    lexical_score,
    sparse_score,
)

__all__ = [
    "M3Embedding",
    "M3Encoder",
    "WindowEmbedding",
    "colbert_maxsim",
    "colbert_score",
    "combined_score",
    "dense_score",
    "lexical_score",
    "sparse_score",
]
