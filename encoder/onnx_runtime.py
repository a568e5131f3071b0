"""Running an exported ONNX folder (``encoder/onnx_export.py``) on ONNX Runtime's CPU provider:
the second runtime behind ``M3Encoder``, which picks it when given such a folder.

ONNX Runtime takes padded batches (the graph is transformers' padded forward): a batch's
texts, planned by ``plan_batches(..., padded=True)`` (at most 2 % padding), are padded to its
longest, and the padding rows are dropped from the outputs here, so the three outputs are the
torch encoder's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m3vdb.encoder.onnx_export import FORMAT, MANIFEST, MODEL_FILE
from m3vdb.encoder.packed import Packing
from m3vdb.encoder.postprocess import sparse_weights
from m3vdb.errors import CheckpointError
from m3vdb.schemas.data import M3Embedding
from m3vdb.schemas.optional import import_optional


def onnx_folder(model: str | os.PathLike[str]) -> Path | None:
    """``model`` as a Path when it is a folder written by ``export_onnx`` (it holds
    ``m3vdb_onnx.json``), else None."""
    path = Path(model).expanduser()
    return path if (path / MANIFEST).is_file() else None


@dataclass(frozen=True)
class OnnxManifest:
    """What ``m3vdb_onnx.json`` says about an exported folder."""

    precision: str
    hidden_size: int
    colbert_dim: int
    max_positions: int
    source: str

    @classmethod
    def read(cls, folder: Path) -> OnnxManifest:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise CheckpointError(
                    f"{folder / MANIFEST} has format {data.get('format')!r}; this m3vdb reads "
                    f"format {FORMAT}: export the model again with this version "
                    "(m3vdb export-onnx)"
                )
            return cls(
                str(data["precision"]),
                int(data["hidden_size"]),
                int(data["colbert_dim"]),
                int(data["max_positions"]),
                str(data.get("source", "")),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{folder / MANIFEST} is not a readable m3vdb ONNX manifest ({exc}); export the "
                "model again (m3vdb export-onnx)"
            ) from exc


class OnnxModel:
    """An exported folder loaded into an ONNX Runtime session (CPU).

    Args:
        folder: the exported folder.
        threads: intra-op threads; default: ONNX Runtime's (one per physical core).
    """

    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        ort: Any = import_optional(
            "onnxruntime",
            package="onnxruntime",
            extra="onnx",
            purpose=f"Running the ONNX export in {folder}",
        )
        self.manifest = OnnxManifest.read(folder)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        # ONNX Runtime's threads spin between operators by default: on a CPU shared with
        # other work (or with the server's own threads) that took the cores from the thread
        # they wait for. Off, the mixed corpus ran in 5.3 s against 10.7 s with spinning and
        # 6.6 s for torch float32 (small checkpoint, 2 cores, loaded machine; bench/README.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not (folder / MODEL_FILE).is_file():
            raise CheckpointError(
                f"{folder} has an m3vdb ONNX manifest but no {MODEL_FILE}; export it again"
            )
        self._session = ort.InferenceSession(
            str(folder / MODEL_FILE), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def forward(
        self,
        ids: list[list[int]],
        *,
        pad_id: int,
        unused_ids: np.ndarray,
        dense: bool,
        sparse: bool,
        colbert: bool,
    ) -> list[M3Embedding]:
        """The outputs of one batch of tokenised texts (special tokens included)."""
        lengths = [len(x) for x in ids]
        longest = max(lengths)
        input_ids = np.full((len(ids), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, text in enumerate(ids):
            input_ids[row, : len(text)] = text
            mask[row, : len(text)] = 1
        wanted = [
            n for n, on in zip(("dense", "sparse", "colbert"), (dense, sparse, colbert)) if on
        ]
        outputs = dict(
            zip(wanted, self._session.run(wanted, {"input_ids": input_ids, "attention_mask": mask}))
        )
        count = len(ids)
        dense_out: list[Any] = [None] * count
        sparse_out: list[Any] = [None] * count
        colbert_out: list[Any] = [None] * count
        if dense:
            dense_out = list(np.ascontiguousarray(outputs["dense"], dtype=np.float32))
        if sparse:
            keep = mask.astype(bool)
            packing = Packing.of(lengths)
            sparse_out = sparse_weights(
                outputs["sparse"][keep].astype(np.float32), input_ids[keep], packing, unused_ids
            )
        if colbert:
            rows = outputs["colbert"]
            colbert_out = [
                np.ascontiguousarray(rows[i, : n - 1], dtype=np.float32)
                for i, n in enumerate(lengths)
            ]
        return [M3Embedding(d, s, c) for d, s, c in zip(dense_out, sparse_out, colbert_out)]
