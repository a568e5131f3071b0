"""What the LlamaIndex and Haystack stores share: completing the embeddings a framework's
documents carry with the outputs the collection stores, and listing documents by filter.

Frameworks are not imported here; both stores call these with m3vdb types only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from m3vdb.connectors.base import Connector, FilterLike, SupportsScan
from m3vdb.errors import InputError, UnsupportedCapabilityError
from m3vdb.schemas.data import Document, M3Embedding
from m3vdb.schemas.encoding import Encoder
from m3vdb.schemas.spec import IndexSpec

if TYPE_CHECKING:
    from m3vdb.encoder import M3Encoder
    from m3vdb.remote import RemoteEncoder


@lru_cache(maxsize=4)
def shared_encoder(model: str, device: str | None = None) -> M3Encoder:
    """One ``M3Encoder`` per (model, device) in this process, so that components and stores
    built from the same model name (``to_dict`` / ``from_dict``) share its weights."""
    from m3vdb.encoder import M3Encoder

    return M3Encoder(model, device=device)


@lru_cache(maxsize=4)
def shared_remote_encoder(url: str) -> RemoteEncoder:
    """One ``RemoteEncoder`` per server URL in this process (components and stores built from
    the same ``encoder_url`` share its connections)."""
    from m3vdb.remote import RemoteEncoder

    return RemoteEncoder(url)


def complete_embeddings(
    texts: Sequence[str],
    given: Sequence[M3Embedding],
    spec: IndexSpec,
    encoder: Encoder | None,
    *,
    ids: Sequence[str],
) -> list[M3Embedding]:
    """``given`` completed with every output ``spec`` stores that it lacks, encoded in one
    encoder call for all texts that lack something (only the outputs some of them lack).

    Raises:
        InputError: an output is missing and there is no encoder, or the text to encode is
            empty.
    """
    need = [
        i
        for i, emb in enumerate(given)
        if (spec.dense and emb.dense is None)
        or (spec.sparse and emb.sparse is None)
        or (spec.colbert and emb.colbert is None)
    ]
    if not need:
        return list(given)
    if encoder is None:
        first = ids[need[0]]
        raise InputError(
            f"document {first!r} carries no embedding for some output the collection stores "
            f"(dense={spec.dense}, sparse={spec.sparse}, colbert={spec.colbert}) and the store "
            "has no encoder: embed it first, or give the store an M3Encoder"
        )
    for i in need:
        if not texts[i].strip():
            raise InputError(
                f"document {ids[i]!r} has no text to encode and lacks embeddings the collection "
                "stores; give it text or precomputed embeddings"
            )
    dense = spec.dense and any(given[i].dense is None for i in need)
    sparse = spec.sparse and any(given[i].sparse is None for i in need)
    colbert = spec.colbert and any(given[i].colbert is None for i in need)
    encoded = encoder.encode([texts[i] for i in need], dense=dense, sparse=sparse, colbert=colbert)
    out = list(given)
    for i, new in zip(need, encoded):
        old = given[i]
        out[i] = M3Embedding(
            dense=old.dense if old.dense is not None else new.dense,
            sparse=old.sparse if old.sparse is not None else new.sparse,
            colbert=old.colbert if old.colbert is not None else new.colbert,
        )
    return out


def scan(connector: Connector, filter: FilterLike = None) -> Iterator[Document]:
    """The connector's documents matching ``filter``.

    Raises:
        UnsupportedCapabilityError: the connector cannot list documents by filter.
    """
    if not isinstance(connector, SupportsScan):
        raise UnsupportedCapabilityError(
            f"{type(connector).__name__} cannot list documents by filter (no scan method); "
            "listing, filtering without a query and deleting by reference need a connector "
            "implementing connectors.base.SupportsScan (Milvus, Qdrant, Elasticsearch)"
        )
    return connector.scan(filter)
