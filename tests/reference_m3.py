"""A straightforward re-implementation of FlagEmbedding's BGE-M3 inference, for tests.

One text at a time, no batching, no padding, Python loops exactly as FlagEmbedding's
``encode_single_device`` post-processes (keep the max weight per token id, drop the CLS,
EOS, PAD and UNK ids, keep weights > 0; ColBERT rows 1..n-1 normalised). It shares no code
with ``encoder.model`` but the loaded checkpoint, so it checks batching, padding, masking and
the vectorised post-processing of the real encoder. Parity with FlagEmbedding itself is
checked in ``test_parity_flagembedding.py`` where FlagEmbedding is installed.
"""

from __future__ import annotations

import numpy as np
import torch

from m3vdb.encoder.checkpoint import Checkpoint


@torch.inference_mode()
def reference_encode(checkpoint: Checkpoint, text: str, max_length: int) -> dict[str, object]:
    tok = checkpoint.tokenizer
    ids = tok(text, truncation=True, max_length=max_length)["input_ids"]  # type: ignore[operator]
    input_ids = torch.tensor([ids])
    hidden = checkpoint.backbone(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    h = hidden.last_hidden_state[0]
    dense = torch.nn.functional.normalize(h[0], dim=-1).numpy()
    weights = torch.relu(checkpoint.sparse_linear(h)).squeeze(-1).numpy()
    unused = {tok.cls_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}  # type: ignore[attr-defined]
    sparse: dict[int, float] = {}
    for w, idx in zip(weights.tolist(), ids):
        if idx not in unused and w > 0 and w > sparse.get(idx, 0):
            sparse[idx] = w
    colbert = torch.nn.functional.normalize(checkpoint.colbert_linear(h[1:]), dim=-1).numpy()
    return {"ids": ids, "dense": dense, "sparse": sparse, "colbert": np.asarray(colbert)}
