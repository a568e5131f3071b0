"""Turning the model's per-token tensors into the three outputs, without Python loops over
tokens: one vectorised pass per batch of packed texts (``encoder/packed.py``)."""

from __future__ import annotations

import numpy as np
import torch

from m3vdb.encoder.packed import Packing
from m3vdb.schemas.data import FloatArray


def text_of_rows(packing: Packing) -> np.ndarray:
    """The index of the text each packed row belongs to."""
    return np.repeat(np.arange(len(packing.lengths)), packing.lengths)


def sparse_weights(
    token_weights: np.ndarray, input_ids: np.ndarray, packing: Packing, unused_ids: np.ndarray
) -> list[dict[int, float]]:
    """Per text: token id -> the max weight over its occurrences, weights > 0 only, the
    unused (CLS, EOS, PAD, UNK) ids dropped.

    Args:
        token_weights: float32 ``(tokens,)``, relu already applied.
        input_ids: int ``(tokens,)``, the packed token ids.
        packing: where each text sits.
        unused_ids: ids never kept.
    """
    keep = (token_weights > 0) & ~np.isin(input_ids, unused_ids)
    rows = text_of_rows(packing)[keep].astype(np.int64)
    ids = input_ids[keep].astype(np.int64)
    weights = token_weights[keep]
    # one key per (text, id): sort by key then weight, the last of each run is the max
    keys = rows * (int(input_ids.max(initial=0)) + 1) + ids
    order = np.lexsort((weights, keys))
    keys, rows, ids, weights = keys[order], rows[order], ids[order], weights[order]
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = keys[1:] != keys[:-1]
    out: list[dict[int, float]] = [{} for _ in packing.lengths]
    for row, token, weight in zip(rows[last].tolist(), ids[last].tolist(), weights[last].tolist()):
        out[row][token] = weight
    return out


def colbert_rows(
    hidden: torch.Tensor,
    packing: Packing,
    colbert_linear: torch.nn.Linear,
    *,
    chunk_rows: int = 4096,
) -> list[FloatArray]:
    """Per text: ``colbert_linear`` of every token's hidden state but the CLS's, L2-normalised
    per row: ``length - 1`` rows (the EOS row included).

    The head runs on ``chunk_rows`` rows at a time, each chunk written straight into the one
    float32 output array, so an 8191-row text never holds more than a chunk of intermediate
    copies (head output, its float32 cast, the normalised rows) besides that output.
    """
    not_cls = np.ones(packing.total, dtype=bool)
    not_cls[list(packing.starts)] = False
    rows = torch.from_numpy(np.flatnonzero(not_cls)).to(hidden.device)
    out = np.empty((len(rows), colbert_linear.out_features), dtype=np.float32)
    for start in range(0, len(rows), chunk_rows):
        vectors = colbert_linear(hidden[rows[start : start + chunk_rows]])
        vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
        out[start : start + len(vectors)] = vectors.cpu().numpy()
    splits = np.cumsum(np.asarray(packing.lengths) - 1)[:-1]
    return list(np.split(out, splits))
