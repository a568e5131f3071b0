"""The ``Encoder`` protocol: all the connectors need of an encoder.

``m3vdb.encoder.M3Encoder`` satisfies it, and so can any other object with the same
``encode`` contract (a remote encoder, a cached one): connectors never import the encoder
package, so ``import m3vdb.connectors`` never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from m3vdb.schemas.data import M3Embedding


@runtime_checkable
class Encoder(Protocol):
    """Encodes texts into BGE-M3's three representations.

    Attributes:
        dense_dim: dimension of the dense vector.
        colbert_dim: dimension of each ColBERT row.
    """

    dense_dim: int
    colbert_dim: int

    def encode(
        self,
        texts: Sequence[str],
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
    ) -> list[M3Embedding]:
        """One ``M3Embedding`` per text, in input order, with the requested outputs set and
        the others None (see ``m3vdb.encoder.M3Encoder.encode`` for the exact rules)."""
        ...
