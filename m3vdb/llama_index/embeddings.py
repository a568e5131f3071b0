"""``M3EmbedModel``: BGE-M3's dense vector as LlamaIndex's ``Settings.embed_model``."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from weakref import WeakKeyDictionary

from m3vdb.llama_index._llama_index import BaseEmbedding, PrivateAttr
from m3vdb.schemas.data import M3Embedding
from m3vdb.schemas.encoding import Encoder

# What M3EmbedModel computed for document texts beyond the dense vector (sparse, ColBERT),
# per encoder, so that M3VectorStore on the same encoder need not run the model again
# when the nodes reach it: ingestion stays ONE forward pass. Bounded by the floats it holds
# (ColBERT rows dominate: 512 tokens x 1024 floats = 2 MB a text); a miss costs a pass.
_SIDE_OUTPUTS: WeakKeyDictionary[Any, OrderedDict[str, M3Embedding]] = WeakKeyDictionary()
SIDE_OUTPUT_FLOATS = 64 * 2**20  # 256 MiB of float32 per encoder


def _floats(emb: M3Embedding) -> int:
    return (0 if emb.colbert is None else int(emb.colbert.size)) + 2 * len(emb.sparse or {})


def remember(encoder: Encoder, texts: list[str], embs: list[M3Embedding]) -> None:
    """Keeps the sparse / ColBERT outputs of ``texts`` for :func:`recall`."""
    try:
        memo = _SIDE_OUTPUTS.setdefault(encoder, OrderedDict())
    except TypeError:  # an encoder that cannot be weakly referenced: no memo
        return
    for text, emb in zip(texts, embs):
        memo[text] = M3Embedding(sparse=emb.sparse, colbert=emb.colbert)
        memo.move_to_end(text)
    held = sum(_floats(e) for e in memo.values())
    while memo and held > SIDE_OUTPUT_FLOATS:
        held -= _floats(memo.popitem(last=False)[1])


def recall(encoder: Encoder, text: str) -> M3Embedding | None:
    """The sparse / ColBERT outputs :func:`remember` kept for ``text`` (then forgotten)."""
    try:
        memo = _SIDE_OUTPUTS.get(encoder)
    except TypeError:
        return None
    return None if memo is None else memo.pop(text, None)


class M3EmbedModel(BaseEmbedding):
    """BGE-M3's dense vector (normalised) for ``Settings.embed_model``, from the same encoder
    instance the :class:`~m3vdb.llama_index.M3VectorStore` uses.

    Document batches are encoded with every output (one forward pass): the sparse and ColBERT
    outputs wait, per text, for the store on the same encoder, which then does not encode
    those nodes again.

    Args:
        encoder: an ``M3Encoder`` (or any ``m3vdb.Encoder``); shared, never copied.
        embed_batch_size: texts per encoder call (LlamaIndex's batching).
    """

    _encoder: Any = PrivateAttr()

    def __init__(self, encoder: Encoder, *, embed_batch_size: int = 32, **kwargs: Any) -> None:
        if not isinstance(encoder, Encoder):
            raise TypeError(
                f"M3EmbedModel wraps an M3Encoder (m3vdb.Encoder), got {type(encoder).__name__}"
            )
        name = str(getattr(encoder, "model_path", type(encoder).__name__))
        super().__init__(model_name=name, embed_batch_size=embed_batch_size, **kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "M3EmbedModel"

    @property
    def encoder(self) -> Encoder:
        """The wrapped encoder."""
        return self._encoder  # type: ignore[no-any-return]

    def _get_query_embedding(self, query: str) -> list[float]:
        emb = self._encoder.encode([query], dense=True, sparse=False, colbert=False)[0]
        return [float(x) for x in emb.dense]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        embs = self._encoder.encode(list(texts), dense=True, sparse=True, colbert=True)
        remember(self._encoder, list(texts), embs)
        return [[float(x) for x in e.dense] for e in embs]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)
