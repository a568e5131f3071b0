"""``m3vdb export-onnx MODEL OUT [--int8]``: a checkpoint to an ONNX folder that
``M3Encoder(OUT)`` (and so ``m3vdb serve --model OUT``) runs on ONNX Runtime.

Imports only the standard library at start-up (``m3vdb --help`` stays instant); torch and
onnx load when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    """Registers ``export-onnx`` on the ``m3vdb`` sub-command parsers."""
    export = commands.add_parser(
        "export-onnx",
        help="export the encoder (backbone and heads) to an ONNX folder for ONNX Runtime",
        description="Export a BGE-M3 checkpoint (backbone, ColBERT and sparse heads: the three "
        "outputs, dynamic batch and length) with its tokenizer to the folder OUT. "
        "M3Encoder(OUT) and 'm3vdb serve --model OUT' run it on ONNX Runtime's CPU provider. "
        "Needs pip install 'm3vdb[onnx]'.",
    )
    export.add_argument("model", metavar="MODEL", help="hub id or local checkpoint directory")
    export.add_argument("out", metavar="OUT", help="the folder to write (new or empty)")
    export.add_argument(
        "--int8",
        action="store_true",
        help="quantise the backbone's weights to int8 per output channel (activations "
        "quantised per call); the heads stay float32",
    )
    export.add_argument("--verbose", action="store_true", help="tracebacks")


def run(args: argparse.Namespace) -> int:
    """Exports, then prints where and in which precision."""
    from m3vdb.encoder.onnx_export import export_onnx

    out = export_onnx(args.model, args.out, int8=args.int8)
    size = (out / "model.onnx").stat().st_size / 2**20
    precision = "int8" if args.int8 else "float32"
    print(f"exported {args.model} to {out} ({precision}, model.onnx {size:.1f} MiB)")
    print(f"load it with M3Encoder({str(out)!r}) or: m3vdb serve --model {out}")
    return 0
