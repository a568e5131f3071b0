"""``M3TextEmbedder`` and ``M3DocumentEmbedder``: BGE-M3's dense AND sparse outputs from one
forward pass, as Haystack components."""

from __future__ import annotations

import dataclasses
from typing import Any

from m3vdb._frameworks import shared_encoder, shared_remote_encoder
from m3vdb.haystack._haystack import (
    HDocument,
    SparseEmbedding,
    component,
    default_from_dict,
    default_to_dict,
)
from m3vdb.haystack.convert import sparse_to_haystack
from m3vdb.schemas.encoding import Encoder


class _M3Component:
    """The model handling both embedders share: loaded in ``warm_up`` (or on first run),
    one instance per (model, device) in the process."""

    def __init__(
        self,
        model: str = "BAAI/bge-m3",
        *,
        device: str | None = None,
        batch_size: int = 32,
        encoder: Encoder | None = None,
        encoder_url: str | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        # An encoder passed in is serialised as the checkpoint it was loaded from.
        self.model = str(getattr(encoder, "model_path", model)) if encoder is not None else model
        self.device = device
        self.batch_size = batch_size
        self.encoder_url = encoder_url
        self._encoder = encoder

    def warm_up(self) -> None:
        """Loads the model, or connects to ``encoder_url`` (shared with stores and components
        naming the same model or server)."""
        if self._encoder is None and self.encoder_url is not None:
            self._encoder = shared_remote_encoder(self.encoder_url)
        elif self._encoder is None:
            self._encoder = shared_encoder(self.model, self.device)

    @property
    def encoder(self) -> Encoder:
        """The encoder (loaded on first use)."""
        self.warm_up()
        assert self._encoder is not None  # set by warm_up
        return self._encoder

    def to_dict(self) -> dict[str, Any]:
        """Init parameters (an ``encoder`` passed in is recorded as its checkpoint)."""
        return default_to_dict(
            self,
            model=self.model,
            device=self.device,
            batch_size=self.batch_size,
            encoder_url=self.encoder_url,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The component ``to_dict`` described."""
        return default_from_dict(cls, data)


@component
class M3TextEmbedder(_M3Component):
    """Embeds a query: ``embedding`` (dense) and ``sparse_embedding`` (BGE-M3's lexical
    weights) from one forward pass, for :class:`~m3vdb.haystack.M3HybridRetriever` or any
    Haystack retriever taking those inputs.

    Args:
        model: BGE-M3 checkpoint (hub id or directory).
        device: the encoder's device (default: CUDA when available).
        batch_size: unused for one text; kept for symmetry with the document embedder.
        encoder: an encoder to use instead of loading ``model`` (``M3Encoder``, any
            ``m3vdb.Encoder``).
        encoder_url: an ``m3vdb serve`` to encode with instead of loading ``model`` here.
    """

    @component.output_types(embedding=list[float], sparse_embedding=SparseEmbedding)
    def run(self, text: str) -> dict[str, Any]:
        """Embeds ``text``.

        Raises:
            TypeError: ``text`` is not a string (a list of documents goes to
                :class:`M3DocumentEmbedder`).
        """
        if not isinstance(text, str):
            raise TypeError(
                f"M3TextEmbedder embeds one str, got {type(text).__name__}; embed documents "
                "with M3DocumentEmbedder"
            )
        emb = self.encoder.encode([text], dense=True, sparse=True, colbert=False)[0]
        assert emb.dense is not None and emb.sparse is not None  # requested above
        return {
            "embedding": emb.dense.tolist(),
            "sparse_embedding": sparse_to_haystack(emb.sparse),
        }


@component
class M3DocumentEmbedder(_M3Component):
    """Sets ``embedding`` (dense) and ``sparse_embedding`` on each document from one forward
    pass per batch; returns new documents (the inputs are not changed).

    Args:
        model: BGE-M3 checkpoint (hub id or directory).
        device: the encoder's device (default: CUDA when available).
        batch_size: documents per encoder call.
        encoder: an encoder to use instead of loading ``model`` (``M3Encoder``, any
            ``m3vdb.Encoder``).
        encoder_url: an ``m3vdb serve`` to encode with instead of loading ``model`` here.
    """

    @component.output_types(documents=list[HDocument])
    def run(self, documents: list[HDocument]) -> dict[str, Any]:
        """Embeds the documents' ``content``.

        Raises:
            TypeError: ``documents`` is not a list of Haystack documents.
            ValueError: a document has no text content.
        """
        if not isinstance(documents, list) or any(not isinstance(d, HDocument) for d in documents):
            raise TypeError(
                "M3DocumentEmbedder takes a list of haystack.Document; embed a query string "
                "with M3TextEmbedder"
            )
        for d in documents:
            if d.content is None:
                raise ValueError(f"document {d.id!r} has no text content to embed")
        out: list[HDocument] = []
        for start in range(0, len(documents), self.batch_size):
            batch = documents[start : start + self.batch_size]
            embs = self.encoder.encode(
                [d.content or "" for d in batch], dense=True, sparse=True, colbert=False
            )
            for doc, emb in zip(batch, embs):
                assert emb.dense is not None and emb.sparse is not None  # requested above
                out.append(
                    dataclasses.replace(
                        doc,
                        embedding=emb.dense.tolist(),
                        sparse_embedding=sparse_to_haystack(emb.sparse),
                    )
                )
        return {"documents": out}
