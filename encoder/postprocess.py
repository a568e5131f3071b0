"""Turning the model's per-token tensors into the three outputs, without Python loops over
tokens: one vectorised pass per batch."""

from __future__ import annotations

import numpy as np
import torch

from m3vdb.schemas.data import FloatArray


def sparse_weights(
    token_weights: np.ndarray, input_ids: np.ndarray, lengths: np.ndarray, unused_ids: np.ndarray
) -> list[dict[int, float]]:
    """Per text: token id -> the max weight over its occurrences, weights > 0 only, the
    unused (CLS, EOS, PAD, UNK) ids dropped.

    Args:
        token_weights: float32 ``(batch, seq)``, relu already applied.
        input_ids: int ``(batch, seq)``.
        lengths: real (non-pad) token count per row.
        unused_ids: ids never kept.
    """
    batch, seq = input_ids.shape
    valid = np.arange(seq)[None, :] < lengths[:, None]
    keep = valid & (token_weights > 0) & ~np.isin(input_ids, unused_ids)
    rows, cols = np.nonzero(keep)
    ids = input_ids[rows, cols].astype(np.int64)
    weights = token_weights[rows, cols]
    # one key per (row, id): sort by key then weight, the last of each run is the max
    keys = rows.astype(np.int64) * (int(input_ids.max(initial=0)) + 1) + ids
    order = np.lexsort((weights, keys))
    keys, rows, ids, weights = keys[order], rows[order], ids[order], weights[order]
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = keys[1:] != keys[:-1]
    out: list[dict[int, float]] = [{} for _ in range(batch)]
    for row, token, weight in zip(rows[last].tolist(), ids[last].tolist(), weights[last].tolist()):
        out[row][token] = weight
    return out


def colbert_rows(
    hidden: torch.Tensor,
    lengths: torch.Tensor,
    colbert_linear: torch.nn.Linear,
    *,
    chunk_rows: int = 4096,
) -> list[FloatArray]:
    """Per text: ``colbert_linear`` of every token's hidden state but the CLS's, L2-normalised
    per row: ``length - 1`` rows (the EOS row included). Only real tokens go through the
    head, not the padding.

    The head runs on ``chunk_rows`` rows at a time, each chunk written straight into the one
    float32 output array, so an 8191-row text never holds more than a chunk of intermediate
    copies (head output, its float32 cast, the normalised rows) besides that output.
    """
    seq = hidden.shape[1]
    mask = torch.arange(1, seq, device=hidden.device)[None, :] < lengths[:, None]
    tokens = hidden[:, 1:][mask]
    out = np.empty((tokens.shape[0], colbert_linear.out_features), dtype=np.float32)
    for start in range(0, tokens.shape[0], chunk_rows):
        vectors = colbert_linear(tokens[start : start + chunk_rows])
        vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
        out[start : start + len(vectors)] = vectors.cpu().numpy()
    splits = np.cumsum((lengths - 1).cpu().numpy())[:-1]
    return list(np.split(out, splits))
