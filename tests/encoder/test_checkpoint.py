"""Loading errors name the file and what to do; the tokenizer follows tokenizer.json."""

from __future__ import annotations

import shutil

import pytest
import torch
from sample_texts import SAMPLE_TEXTS
from tokenizers import Tokenizer

from m3vdb import CheckpointError
from m3vdb.encoder import M3Encoder
from m3vdb.encoder.checkpoint import load_tokenizer


@pytest.fixture
def broken_dir(tiny_model_dir, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, target)
    return target


@pytest.mark.parametrize("name", ["colbert_linear.pt", "sparse_linear.pt", "tokenizer.json"])
def test_missing_file_is_named(broken_dir, name):
    (broken_dir / name).unlink()
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        M3Encoder(broken_dir)


def test_head_with_wrong_shape_is_named(broken_dir):
    torch.save(
        {"weight": torch.zeros(1, 7), "bias": torch.zeros(1)}, broken_dir / "sparse_linear.pt"
    )
    with pytest.raises(CheckpointError, match=r"sparse_linear\.pt holds weight \(1, 7\)"):
        M3Encoder(broken_dir)


def test_unknown_hub_id_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="Pass a local checkpoint directory"):
        M3Encoder("no-such-org/no-such-model")


@pytest.mark.parametrize("kind", ["absolute", "relative", "pathlike"])
def test_missing_local_directory_is_named(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    missing = {"absolute": str(tmp_path / "nope"), "relative": "./nope", "pathlike": tmp_path / "x"}
    with pytest.raises(CheckpointError, match="does not exist; pass an existing checkpoint"):
        M3Encoder(missing[kind])


def test_tokenizer_ids_are_those_of_tokenizer_json(tiny_model_dir):
    """Whitespace, tabs and newlines must tokenise as the file says on any transformers."""
    ours = load_tokenizer(tiny_model_dir)
    raw = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    for text in SAMPLE_TEXTS:
        assert ours(text)["input_ids"] == raw.encode(text).ids  # type: ignore[operator]
