"""Token windows of long texts: which consecutive tokens each window holds and where it lies
in its text. One copy of the rule, used by ``M3Encoder.encode_windows`` and by the server's
windows (``m3vdb serve``'s ``/encode`` with ``windows``), so both give the same windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from m3vdb.schemas.data import M3Embedding, WindowEmbedding


@dataclass(frozen=True)
class WindowSpan:
    """Where one window lies: its text, its content tokens ``[token_start, token_end)``
    (0 = the first token after CLS) and its characters ``[char_start, char_end)``."""

    text_index: int
    token_start: int
    token_end: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class WindowPlan:
    """The windows of some texts, grouped by text in input order: each window's span and its
    token ids (CLS + content tokens + EOS)."""

    spans: list[WindowSpan]
    ids: list[list[int]]

    def embeddings(
        self, texts: Sequence[str], embeddings: Sequence[M3Embedding]
    ) -> list[WindowEmbedding]:
        """The windows with their embeddings (``embeddings[i]`` is window ``i``'s)."""
        return [
            WindowEmbedding(
                s.text_index,
                s.token_start,
                s.token_end,
                s.char_start,
                s.char_end,
                texts[s.text_index][s.char_start : s.char_end],
                emb,
            )
            for s, emb in zip(self.spans, embeddings)
        ]


def plan_windows(
    token_ids: Sequence[Sequence[int]],
    offsets: Sequence[Sequence[tuple[int, int]]],
    *,
    window_tokens: int,
    overlap_tokens: int,
    cls_id: int,
    eos_id: int,
) -> WindowPlan:
    """Splits each text's tokens (without special tokens, with their character offsets) into
    windows of CLS + up to ``window_tokens - 2`` tokens + EOS; consecutive windows share
    ``overlap_tokens`` tokens. A text that fits gives one window; an empty text gives one
    window with no tokens. The caller checks the sizes (``M3Encoder.encode_windows``)."""
    content = window_tokens - 2
    stride = content - overlap_tokens
    spans: list[WindowSpan] = []
    window_ids: list[list[int]] = []
    for index, (ids, offs) in enumerate(zip(token_ids, offsets)):
        start = 0
        while True:
            end = min(start + content, len(ids))
            chars = (offs[start][0], offs[end - 1][1]) if end > start else (0, 0)
            spans.append(WindowSpan(index, start, end, chars[0], chars[1]))
            window_ids.append([cls_id, *ids[start:end], eos_id])
            if end >= len(ids):
                break
            start += stride
    return WindowPlan(spans, window_ids)
