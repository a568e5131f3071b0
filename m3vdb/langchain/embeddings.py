"""LangChain ``Embeddings`` over the dense output of any m3vdb encoder (``M3Encoder``,
``RemoteEncoder``)."""

from __future__ import annotations

from m3vdb.langchain._langchain import Embeddings
from m3vdb.schemas.encoding import Encoder


class M3Embeddings(Embeddings):
    """BGE-M3's dense vector as a LangChain ``Embeddings`` (normalised, ``encoder.dense_dim``).

    ``M3VectorStore`` recognises it and uses the wrapped encoder for all three outputs (dense,
    sparse, ColBERT); any other LangChain component sees the dense vector only.

    Args:
        encoder: an ``M3Encoder``, a ``RemoteEncoder`` (an ``m3vdb serve``) or any
            ``m3vdb.Encoder``; shared, never copied.
    """

    def __init__(self, encoder: Encoder) -> None:
        if not isinstance(encoder, Encoder):
            raise TypeError(
                "M3Embeddings wraps an m3vdb encoder (M3Encoder, RemoteEncoder or any "
                f"m3vdb.Encoder), got {type(encoder).__name__}"
            )
        self.encoder = encoder

    def __repr__(self) -> str:
        return f"M3Embeddings({self.encoder!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Dense vectors of ``texts`` (truncated at the model's length, as ``encode`` does)."""
        embs = self.encoder.encode(texts, dense=True, sparse=False, colbert=False)
        return [e.dense.tolist() for e in embs]  # type: ignore[union-attr]

    def embed_query(self, text: str) -> list[float]:
        """Dense vector of one query (BGE-M3 uses no query instruction)."""
        return self.embed_documents([text])[0]
