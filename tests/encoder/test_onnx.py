"""The ONNX Runtime runtime: a checkpoint exported by ``export_onnx`` and loaded back with
``M3Encoder(folder)`` gives the torch float32 encoder's three outputs (to 1e-5), on mixed
lengths (padding inside a batch), its graph has ONNX Runtime's fused attention, and its int8
export passes the int8 quality gate.

Needs the ``onnx`` extra (onnxruntime, onnx); skipped with the reason without it. If parity
fails after a transformers upgrade, look first at the traced attention mask: the graph is
transformers' padded forward (eager attention) traced once on a batch with padding, then fused
by ONNX Runtime's transformer optimizer.
"""

from __future__ import annotations

import numpy as np
import pytest
from sample_texts import SAMPLE_TEXTS, TEST_MAX_LENGTH

from m3vdb import InputError
from m3vdb.encoder import M3Encoder
from m3vdb.encoder.batching import plan_batches

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")

from m3vdb.encoder.onnx_export import MANIFEST, export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def onnx_dir(tiny_model_dir, tmp_path_factory):
    return export_onnx(tiny_model_dir, tmp_path_factory.mktemp("onnx") / "fp32")


@pytest.fixture(scope="module")
def onnx_int8_dir(tiny_model_dir, tmp_path_factory):
    return export_onnx(tiny_model_dir, tmp_path_factory.mktemp("onnx") / "int8", int8=True)


@pytest.fixture(scope="module")
def float32_outputs(tiny_encoder):
    return tiny_encoder.encode(SAMPLE_TEXTS, max_length=TEST_MAX_LENGTH)


def test_export_writes_the_model_its_tokenizer_and_manifest(onnx_dir):
    names = {p.name for p in onnx_dir.iterdir()}
    assert {"model.onnx", "tokenizer.json", MANIFEST} <= names


def test_float32_equals_the_torch_encoder(onnx_dir, tiny_encoder, float32_outputs):
    """float32 ONNX Runtime outputs equal torch float32 to 1e-5: dense, every sparse weight
    (same ids), every ColBERT row; the batch mixes lengths, so padding is exercised."""
    enc = M3Encoder(onnx_dir)
    assert enc.runtime == "onnxruntime" and enc.precision == "float32"
    assert enc.max_length == tiny_encoder.max_length
    assert enc.tokenize(SAMPLE_TEXTS) == tiny_encoder.tokenize(SAMPLE_TEXTS)
    got = enc.encode(SAMPLE_TEXTS, max_length=TEST_MAX_LENGTH)
    lengths = [len(x) for x in enc.tokenize(SAMPLE_TEXTS, max_length=TEST_MAX_LENGTH)]
    batches = plan_batches(
        lengths, token_budget=enc.token_budget, max_batch_size=enc.max_batch_size, padded=True
    )
    assert any(len({lengths[i] for i in batch}) > 1 for batch in batches)  # padding ran
    for ref, emb in zip(float32_outputs, got):
        np.testing.assert_allclose(emb.dense, ref.dense, atol=1e-5, rtol=0)
        assert emb.sparse.keys() == ref.sparse.keys()
        for token, weight in ref.sparse.items():
            assert abs(emb.sparse[token] - weight) <= 1e-5
        assert emb.colbert.shape == ref.colbert.shape and emb.colbert.dtype == np.float32
        np.testing.assert_allclose(emb.colbert, ref.colbert, atol=1e-5, rtol=0)


def _op_types(folder) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node]


def test_export_fuses_each_layers_attention(onnx_dir, tiny_model_dir):
    """One ONNX Runtime Attention node per layer (its kernel takes the texts' lengths, not a
    4-D mask): what makes the export as fast as the torch encoder; an unrecognised trace
    would still be right, only slower, which this test catches."""
    import json

    layers = json.loads((tiny_model_dir / "config.json").read_text())["num_hidden_layers"]
    ops = _op_types(onnx_dir)
    assert ops.count("Attention") == layers
    assert "SkipLayerNormalization" in ops and "Softmax" not in ops


def test_outputs_asked_for_only(onnx_dir):
    enc = M3Encoder(onnx_dir)
    (emb,) = enc.encode(["just the dense vector"], sparse=False, colbert=False)
    assert emb.dense is not None and emb.sparse is None and emb.colbert is None


def test_int8_export_passes_the_quality_gate(onnx_int8_dir, float32_outputs):
    """int8 (per-channel weights, dynamic activations): dense cosine >= 0.998 to float32."""
    enc = M3Encoder(onnx_int8_dir)
    assert enc.precision == "int8" and enc.runtime == "onnxruntime"
    got = enc.encode(SAMPLE_TEXTS, max_length=TEST_MAX_LENGTH)
    for ref, emb in zip(float32_outputs, got):
        assert float(ref.dense @ emb.dense) >= 0.998
        assert emb.colbert.shape == ref.colbert.shape


def test_int8_export_quantises_the_backbone_not_the_heads(onnx_int8_dir):
    import onnx

    nodes = onnx.load(str(onnx_int8_dir / "model.onnx")).graph.node
    quantised = [n.name for n in nodes if n.op_type in ("MatMulInteger", "DynamicQuantizeLinear")]
    heads = [n.name for n in nodes if n.name.startswith(("/colbert_linear/", "/sparse_linear/"))]
    assert quantised and heads
    assert "QAttention" in _op_types(onnx_int8_dir)  # the fused attention's projections too
    assert not [n for n in heads if "quant" in n.lower() or "Integer" in n]
    assert {n.op_type for n in nodes if n.name in heads} & {"MatMul"}


def test_an_export_runs_in_its_own_precision_on_the_cpu(onnx_dir):
    with pytest.raises(InputError, match="exported in float32"):
        M3Encoder(onnx_dir, dtype="int8")
    with pytest.raises(InputError, match="runs on the CPU"):
        M3Encoder(onnx_dir, device="cuda")


def test_export_refuses_a_folder_that_holds_files(tiny_model_dir, onnx_dir):
    with pytest.raises(InputError, match="not an empty folder"):
        export_onnx(tiny_model_dir, onnx_dir)


def test_cli_export_onnx_writes_a_folder_the_encoder_loads(tiny_model_dir, tmp_path, capsys):
    from m3vdb.cli.main import main

    out = tmp_path / "cli-int8"
    assert main(["export-onnx", str(tiny_model_dir), str(out), "--int8"]) == 0
    assert "int8" in capsys.readouterr().out
    enc = M3Encoder(out)
    assert enc.precision == "int8" and enc.runtime == "onnxruntime"
    # a second export into the same folder is refused, with the reason
    assert main(["export-onnx", str(tiny_model_dir), str(out)]) != 0
    assert "not an empty folder" in capsys.readouterr().err
