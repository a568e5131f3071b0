"""Golden outputs of the tiny checkpoint: ``python tests/golden_values.py`` rewrites
``tests/golden/tiny_outputs.json`` (only when a deliberate change of the checkpoint factory
or of the inference rules makes that right; say why in the commit)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from checkpoint_factory import build_checkpoint
from sample_texts import SAMPLE_TEXTS, TEST_MAX_LENGTH

from m3vdb.encoder import M3Encoder

GOLDEN_FILE = Path(__file__).parent / "golden" / "tiny_outputs.json"
# the long text's ColBERT rows are many: keep the file small
GOLDEN_TEXTS = SAMPLE_TEXTS[:-1]


def compute(encoder: M3Encoder) -> list[dict[str, object]]:
    embs = encoder.encode(GOLDEN_TEXTS, max_length=TEST_MAX_LENGTH)
    ids = encoder.tokenizer(GOLDEN_TEXTS, truncation=True, max_length=TEST_MAX_LENGTH)["input_ids"]  # type: ignore[operator]
    return [
        {
            "text": text,
            "input_ids": token_ids,
            "dense": [round(float(x), 6) for x in emb.dense],
            "sparse": {str(k): round(v, 6) for k, v in sorted(emb.sparse.items())},
            "colbert": [[round(float(x), 6) for x in row] for row in emb.colbert],
        }
        for text, token_ids, emb in zip(GOLDEN_TEXTS, ids, embs)
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        values = compute(M3Encoder(build_checkpoint(tmp), dtype="float32"))
    GOLDEN_FILE.parent.mkdir(exist_ok=True)
    GOLDEN_FILE.write_text(
        json.dumps(values, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    print(f"wrote {GOLDEN_FILE}")
