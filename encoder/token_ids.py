"""Token ids through the tokenizer's Rust core, without transformers' per-call work.

transformers' ``__call__`` applies its truncation and padding settings to the shared Rust
tokenizer on every call and builds a ``BatchEncoding``: about 67 us for one short text, against
31 us for the Rust ``encode`` (small checkpoint, 2-core AVX2 EPYC). ``m3vdb serve`` tokenises
each request on its event loop, on the cores the forward pass needs, so that time was taken
from the model (bench/README.md, "Serving"). A private copy of the Rust tokenizer, with no
truncation and no padding, gives the same ids (``tests/encoder/test_encoder.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TokenIds:
    """The ids ``M3Encoder.tokenize`` returns, from a copy of ``tokenizer``'s Rust core.

    Args:
        tokenizer: a transformers fast tokenizer.
        eos_id: the id its post-processor ends every text with.
    """

    def __init__(self, tokenizer: Any, eos_id: int) -> None:
        from tokenizers import Tokenizer

        self._rust = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._rust.no_truncation()
        self._rust.no_padding()
        self._eos_id = eos_id

    @classmethod
    def of(cls, tokenizer: Any, cls_id: int, eos_id: int) -> TokenIds | None:
        """A ``TokenIds`` for ``tokenizer`` when its special tokens are one CLS in front and one
        EOS at the end (BGE-M3's XLM-R, BERT), which is what truncation here assumes; else
        None (the caller keeps transformers' call)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or backend.post_processor is None:
            return None
        if backend.post_processor.num_special_tokens_to_add(False) != 2:
            return None
        token_ids = cls(tokenizer, eos_id)
        probe = token_ids(["a"], max_length=None)[0]
        return token_ids if probe[0] == cls_id and probe[-1] == eos_id else None

    def __call__(self, texts: Sequence[str], *, max_length: int | None) -> list[list[int]]:
        """Each text's ids with its special tokens, cut to ``max_length`` (None: every token)
        as transformers truncates one text: the content shortened, the EOS kept."""
        # encode_batch even for one text: 30 us, as encode; from 4 texts it is 1.5x faster
        out: list[list[int]] = []
        for encoding in self._rust.encode_batch(list(texts)):
            ids: list[int] = encoding.ids
            if max_length is not None and len(ids) > max_length:
                ids = ids[: max_length - 1] + [self._eos_id]
            out.append(ids)
        return out
