"""Makes a random-weight benchmark checkpoint usable for precision comparisons.

Random weights at the factory's default spread (0.1) collapse a 24 x 1024 model: from layer 6
on every token has the same hidden state, so a dense cosine or a sparse top-10 overlap measured
on it says nothing. The ``full-scaled`` benchmark checkpoint uses BERT's own initial spread
(0.02), which keeps tokens apart through all 24 layers; its random sparse head, though, gives
every token of a text the same sign (the hidden states share a large common direction), so
most texts have no sparse weight at all. :func:`centre_sparse_head` sets the head's bias to
minus the median of its pre-activation over a corpus: about half the tokens then get a
positive weight, as with the real model.
"""

from __future__ import annotations

from pathlib import Path

import torch


def token_spread(hidden: torch.Tensor) -> float:
    """Mean pairwise cosine between the token hidden states of one text (1.0: collapsed)."""
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1)
    n = unit.shape[0]
    return float(((unit @ unit.T).sum() - n) / max(n * n - n, 1))


def centre_sparse_head(path: Path, texts: list[str]) -> dict[str, float]:
    """Rewrites ``sparse_linear.pt`` in ``path`` with its bias centred on ``texts``' tokens.

    Returns:
        The last layer's mean pairwise token cosine (collapse check) and the new bias.
    """
    from m3vdb.encoder.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    tokenizer = checkpoint.tokenizer
    logits, spreads = [], []
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"]])  # type: ignore[operator]
            hidden = checkpoint.backbone(input_ids=ids).last_hidden_state[0]
            spreads.append(token_spread(hidden))
            logits.append(hidden[1:-1] @ checkpoint.sparse_linear.weight[0])
    weight = checkpoint.sparse_linear.weight.detach().clone()
    bias = -torch.cat(logits).median().reshape(1)
    torch.save({"weight": weight, "bias": bias}, path / "sparse_linear.pt")
    return {"token_cosine": sum(spreads) / len(spreads), "sparse_bias": float(bias)}
