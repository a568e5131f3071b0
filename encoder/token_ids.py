"""Token ids straight from the ``tokenizers`` backend of the checkpoint's fast tokenizer.

Why: transformers' ``PreTrainedTokenizerFast.__call__`` costs about 1 ms of Python per call
around a 0.05 ms Rust encode of a short text (profiled in ``m3vdb serve``, where each request
tokenises its own texts: it was a third of the server's CPU per request). This calls the
same Rust tokenizer (built from the same ``tokenizer.json``) directly.

It equals transformers' ids: the backend is a private copy with no truncation or padding
state, and truncation is done as transformers does it for one sequence (the content cut to
``max_length`` minus the special tokens, then CLS ... EOS around it), which holds for
templates that put one token before and one after the text (XLM-R's ``<s> $A </s>``);
:meth:`TokenIds.of` checks that on the loaded tokenizer and answers None otherwise (the
encoder then keeps transformers' path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TokenIds:
    """Tokenises texts to ids with special tokens, like the transformers tokenizer it copies.

    Build it with :meth:`of`.
    """

    def __init__(self, backend: Any, cls_id: int, eos_id: int) -> None:
        self._backend = backend
        self._cls_id = cls_id
        self._eos_id = eos_id

    @classmethod
    def of(cls, tokenizer: Any) -> TokenIds | None:
        """A TokenIds for the transformers fast ``tokenizer``, or None when its template is
        not one token before and one after the text."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        from tokenizers import Tokenizer

        own = Tokenizer.from_str(backend.to_str())
        own.no_truncation()
        own.no_padding()
        cls_id, eos_id = int(tokenizer.cls_token_id), int(tokenizer.eos_token_id)
        probe = "a b"
        plain = own.encode(probe, add_special_tokens=False).ids
        if own.encode(probe).ids != [cls_id, *plain, eos_id]:
            return None
        return cls(own, cls_id, eos_id)

    def __call__(self, texts: Sequence[str], max_length: int | None) -> list[list[int]]:
        """The ids of ``texts``, each cut to ``max_length`` tokens (special tokens included;
        None: not cut)."""
        rows = [e.ids for e in self._backend.encode_batch(list(texts))]
        if max_length is None:
            return rows
        keep = max_length - 1  # CLS + content, then EOS
        return [row if len(row) <= max_length else [*row[:keep], self._eos_id] for row in rows]
