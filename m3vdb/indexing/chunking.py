"""How long documents become entries: the window settings (:class:`Chunking`), the entry ids
of windows, the content hash that decides whether a stored document is current, and how many
tokens one entry of a collection holds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from m3vdb.connectors.base import Connector
from m3vdb.errors import InputError
from m3vdb.schemas.data import Document
from m3vdb.schemas.spec import IndexSpec

DEFAULT_WINDOW = 512
DEFAULT_OVERLAP = 64


@dataclass(frozen=True)
class Chunking:
    """How long documents become windows.

    Attributes:
        window: tokens per window, special tokens included.
        overlap: tokens shared by consecutive windows.
        automatic: split only documents longer than one entry holds (the default); False:
            split every document longer than ``window`` (``--chunk-tokens``).
    """

    window: int = DEFAULT_WINDOW
    overlap: int = DEFAULT_OVERLAP
    automatic: bool = True

    @property
    def key(self) -> str:
        """The settings as they enter the content hash."""
        return f"{'auto' if self.automatic else 'fixed'}:{self.window}/{self.overlap}"


def default_overlap(window: int) -> int:
    """The overlap for ``--chunk-tokens N`` without ``--chunk-overlap``: 64 tokens, or a
    quarter of a small window's content."""
    return min(DEFAULT_OVERLAP, max(0, (window - 2) // 4))


def check_window(window: int, overlap: int) -> None:
    """InputError, in the options' words, when the window cannot be built."""
    if window < 3:
        raise InputError(
            f"--chunk-tokens {window} is too small: a window holds 2 special tokens, so use 3 "
            "or more (512 is common)"
        )
    if not 0 <= overlap < window - 2:
        raise InputError(
            f"--chunk-overlap {overlap} must be at least 0 and smaller than the {window - 2} "
            f"text tokens of a --chunk-tokens {window} window (the other 2 are special "
            f"tokens): use --chunk-overlap {default_overlap(window)}, or a larger --chunk-tokens"
        )


def entry_id(doc_id: str, n: int) -> str:
    """The id of window ``n`` of document ``doc_id``."""
    return f"{doc_id}#{n}"


def content_hash(doc: Document, chunking: Chunking | None) -> str:
    """What decides whether a stored document is current: its text, its metadata and the
    window settings."""
    payload = json.dumps(
        [doc.text, doc.metadata, chunking.key if chunking else "whole"],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def entry_capacity(connector: Connector | IndexSpec, encoder: Any) -> int:
    """The most tokens (special tokens included) one entry of a collection (or of a spec)
    holds: n tokens give n - 1 ColBERT rows, and the encoder reads at most its
    ``max_length``."""
    spec = connector if isinstance(connector, IndexSpec) else connector.spec
    # an encoder that does not say its length (another model's embeddings) truncates itself
    capacity = int(getattr(encoder, "max_length", 2**31 - 1))
    if spec.colbert:
        capacity = min(capacity, spec.max_colbert_rows + 1)
    return capacity


def check_chunking(chunking: Chunking | None, capacity: int) -> None:
    """InputError when a ``--chunk-tokens`` window does not fit one entry."""
    if chunking is not None and not chunking.automatic and chunking.window > capacity:
        raise InputError(
            f"--chunk-tokens {chunking.window} does not fit one entry of this collection "
            f"(at most {capacity} tokens, special tokens included): use --chunk-tokens "
            f"{capacity} or less"
        )


def token_counts(encoder: Any, texts: Sequence[str]) -> list[int]:
    """Tokens of each text, special tokens included: untruncated with a local model; with a
    served one (``--encoder-url``), cut at the model's length (enough to tell what is long)."""
    if not texts:
        return []
    if not hasattr(encoder, "tokenizer"):  # a RemoteEncoder: the server tokenizes
        return [len(x) for x in encoder.tokenize(list(texts))]
    return [len(x) for x in encoder.tokenize(list(texts), truncate=False)]


def too_long_message(doc_id: str, tokens: int, capacity: int) -> str:
    return (
        f"document {doc_id!r} has {tokens:,} tokens; one entry of this collection holds at "
        f"most {capacity:,} (special tokens included), and --no-chunk refuses to split it: "
        "leave --no-chunk out to store it as overlapping windows"
    )


#: The default: windows of 512 tokens overlapping by 64, only for documents one entry cannot hold.
DEFAULT_CHUNKING = Chunking()


#: Metadata keys the indexer writes on every entry (a document may not bring its own).
BOOKKEEPING_KEYS = ("parent_id", "chunk", "chunks", "char_start", "char_end", "content_hash")


def user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's metadata as its document came: without the content hash, and without the
    window keys when the document is stored whole (a window keeps them: they say which
    document it belongs to and where it lies in it)."""
    whole = metadata.get("chunks") in (None, 1)
    drop = set(BOOKKEEPING_KEYS) if whole else {"content_hash"}
    return {k: v for k, v in metadata.items() if k not in drop}
