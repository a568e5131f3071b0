"""``M3Encoder``: BGE-M3's dense, sparse and ColBERT outputs from one forward pass."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from m3vdb.encoder.batching import plan_batches
from m3vdb.encoder.checkpoint import load_checkpoint, load_tokenizer
from m3vdb.encoder.int8 import Int8Choice, quantize_fastest
from m3vdb.encoder.onnx_runtime import OnnxModel, onnx_folder
from m3vdb.encoder.packed import PackedEncoder, Packing
from m3vdb.encoder.postprocess import colbert_rows, sparse_weights
from m3vdb.encoder.precision import DType, HardwareProbe, Precision, select_precision
from m3vdb.encoder.token_ids import TokenIds
from m3vdb.encoder.windows import WindowPlan, plan_windows
from m3vdb.errors import InputError
from m3vdb.schemas.data import M3Embedding, WindowEmbedding

# Activation memory per token of one forward pass, in units of the hidden size times the
# dtype's size: the FFN's intermediate (4 h), Q/K/V/context and the residual stream, with
# allocator slack. Sizes the default token budget on an accelerator.
_ACTIVATION_HIDDENS_PER_TOKEN = 16


def _default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_token_budget(
    device: torch.device,
    *,
    hidden_size: int,
    dtype_bytes: int,
    free_bytes: int | None = None,
    memory_fraction: float = 0.5,
) -> int:
    """The default token budget (real tokens per forward pass).

    On the CPU: the tokens whose (tokens x hidden) activations take 4 MiB: 2048 in bf16, 1024
    in float32 and int8 (texts are packed without padding, so such a batch is already one large
    matrix multiply; larger batches spill the activations out of the caches: on the mixed
    corpus bf16 ran 8 % slower at 16384 tokens, int8 24 % slower at 2048, ``bench/README.md``).
    On an accelerator: as many tokens as fit in ``memory_fraction`` of its free memory at
    :data:`_ACTIVATION_HIDDENS_PER_TOKEN` hidden vectors per token, between 8192 (one
    full-length text) and 262144.

    Args:
        device: the encoder's device.
        hidden_size: the model's hidden size.
        dtype_bytes: bytes per activation value (2 for bf16/fp16, 4 for fp32).
        free_bytes: the device's free memory (injectable); default: asked from CUDA, or
            65536 tokens' worth where the device cannot say (MPS).
        memory_fraction: the share of the free memory activations may take.
    """
    if device.type == "cpu":
        return max(256, (4 << 20) // (hidden_size * dtype_bytes))
    per_token = _ACTIVATION_HIDDENS_PER_TOKEN * hidden_size * dtype_bytes
    if free_bytes is None:
        if device.type != "cuda":
            return 65536
        free_bytes, _total = torch.cuda.mem_get_info(device)
    return int(min(max(memory_fraction * free_bytes // per_token, 8192), 262144))


def _check_texts(texts: object) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list of strings, not a single string: wrap it as [text]")
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is a {type(text).__name__}, not a str")
    return list(texts)  # type: ignore[arg-type]


class M3Encoder:
    """The BGE-M3 encoder, equal to FlagEmbedding's ``BGEM3FlagModel.encode`` on the same
    checkpoint (fp32: within 1e-5), faster, and free of FlagEmbedding.

    Example::

        enc = M3Encoder("BAAI/bge-m3")
        embs = enc.encode(["a text"], dense=True, sparse=True, colbert=True)
        embs[0].dense, embs[0].sparse, embs[0].colbert

    Two runtimes, chosen by what ``model`` is: a checkpoint runs on torch; a folder written by
    ``m3vdb export-onnx`` (``m3vdb.encoder.onnx_export.export_onnx``: it holds
    ``m3vdb_onnx.json``) runs on ONNX Runtime's CPU provider (``pip install 'm3vdb[onnx]'``),
    in the precision it was exported in (float32: the torch float32 outputs to ~1e-6; int8),
    with the same API and outputs. ``runtime`` says which.

    Args:
        model: a hub id (downloaded once into the Hugging Face cache), a local checkpoint
            directory holding the transformers model, ``tokenizer.json``,
            ``colbert_linear.pt`` and ``sparse_linear.pt``, or an exported ONNX folder.
        device: "cpu", "cuda", "cuda:1", "mps"...; default: CUDA when present, else MPS, else CPU.
        dtype: "auto" (default): bfloat16 on a CPU with native bf16 (AVX512-BF16 or AMX) and on
            a CUDA device that supports it, float16 on other CUDA devices, float32 elsewhere.
            "float32" is the reference-equal path (FlagEmbedding's outputs to ~1e-5); bf16
            gives dense cosine >= 0.9998 to it. "int8" (CPU only): the backbone's Linear
            layers in int8 (per-token activation scales), for CPUs without native bf16; see
            ``bench/README.md`` for its speed and retrieval cost. "float16", "bfloat16" force
            that dtype.
        token_budget: most tokens per forward pass (the texts of a batch are packed, without
            padding); bounds memory whatever the input lengths. Default: 1024-2048 on CPU; on CUDA
            sized to half the free GPU memory (:func:`default_token_budget`).
        max_batch_size: most texts per forward pass.
        hardware_probe: tells what the hardware supports, for ``dtype="auto"`` (injectable
            for tests); default: :func:`m3vdb.encoder.precision.probe_hardware`.
        int8_kernel: for ``dtype="int8"``, the kernel to use (``"onednn-u8"``,
            ``"onednn-s8"``, ``"int_mm"``); default: measured at load on the model's own
            Linear shapes, the fastest kept (``m3vdb.encoder.int8.choose_int8_kernel``); when
            none beats float32, one warning and the encoder stays in float32.

    Attributes:
        model_name: the model as given (a hub id or a directory): what ``IndexSpec.for_encoder``
            records in a collection.
        model_path: the checkpoint directory it was loaded from.
        runtime: "torch" or "onnxruntime".
        precision: the resolved dtype name ("float32", "bfloat16", "float16" or "int8"):
            "float32" after an int8 fallback.
        dtype: the torch dtype activations flow in (float32 for int8).
        int8_kernel: the int8 kernel in use, None when not int8 (or fallen back).
        int8_choice: what the int8 measurement timed and chose (None unless ``dtype="int8"``):
            its ``describe()`` is one log line.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "BAAI/bge-m3",
        *,
        device: str | None = None,
        dtype: DType = "auto",
        token_budget: int | None = None,
        max_batch_size: int = 256,
        hardware_probe: HardwareProbe | None = None,
        int8_kernel: str | None = None,
    ) -> None:
        # the model as the caller named it (a hub id stays a hub id, not its cache folder):
        # what a collection records as the model it was built with
        self.model_name = str(model)
        self.int8_kernel: str | None = None
        self.int8_choice: Int8Choice | None = None
        self._onnx: OnnxModel | None = None
        folder = onnx_folder(model)
        if folder is not None:
            resolved = self._load_onnx(folder, device, dtype)
        else:
            resolved = self._load_torch(
                model, device, dtype, hardware_probe, int8_kernel, token_budget
            )
        self.token_budget = token_budget or default_token_budget(
            self.device, hidden_size=self.dense_dim, dtype_bytes=resolved.compute_dtype.itemsize
        )
        self.max_batch_size = max_batch_size
        tok = self.tokenizer
        self._pad_id = int(tok.pad_token_id)  # type: ignore[attr-defined]
        self._cls_id = int(tok.cls_token_id)  # type: ignore[attr-defined]
        self._eos_id = int(tok.eos_token_id)  # type: ignore[attr-defined]
        # the same ids as the tokenizer's call at half its cost per call (encoder/token_ids.py)
        self._token_ids = TokenIds.of(tok, self._cls_id, self._eos_id)
        # FlagEmbedding drops these ids from the lexical weights
        self._unused_ids = np.array(
            sorted({self._cls_id, self._eos_id, self._pad_id, int(tok.unk_token_id)})  # type: ignore[attr-defined]
        )

    def _load_torch(
        self,
        model: str | os.PathLike[str],
        device: str | None,
        dtype: DType,
        hardware_probe: HardwareProbe | None,
        int8_kernel: str | None,
        token_budget: int | None,
    ) -> Precision:
        self.runtime = "torch"
        self.device = torch.device(device or _default_device())
        resolved = select_precision(dtype, self.device, probe=hardware_probe)
        self.precision = resolved.name
        self.dtype = resolved.compute_dtype
        # weights are cast while loading: a bf16 load never holds an fp32 copy of the model
        checkpoint = load_checkpoint(model, dtype=self.dtype)
        self.model_path = checkpoint.path
        self.tokenizer = checkpoint.tokenizer
        self.max_length = checkpoint.max_positions
        self._backbone = checkpoint.backbone.to(self.device)
        # fuses Q/K/V first, so int8 converts the fused layer (one input quantisation)
        self._packed = PackedEncoder(self._backbone, quantized_activations=resolved.quantized)
        if resolved.quantized:
            # the backbone's Linear layers only: the heads stay float32 (2 of 98 GEMMs per
            # token; quantising the ColBERT head would add its error to every row)
            # timed on batches of the encoder's own size (its CPU token budget, at most 1024
            # rows): at 256 rows unsigned oneDNN and _int_mm tied,
            # at 1024 the former ran 1.8x faster (bench/README.md, "int8 kernels")
            rows = min(token_budget or 1024, 1024)
            self.int8_choice = quantize_fastest(self._backbone, rows=rows, kernel=int8_kernel)
            self.int8_kernel = self.int8_choice.kernel
            if self.int8_kernel is None:
                warnings.warn(
                    "dtype='int8': no int8 kernel ran faster than float32 on this CPU, so the "
                    f"encoder runs in float32 (measured: {self.int8_choice.timings()}); use "
                    "dtype='auto' to get the fastest float precision without this check",
                    RuntimeWarning,
                    stacklevel=3,  # the caller of M3Encoder()
                )
                self.precision = "float32"
        self._colbert_linear = checkpoint.colbert_linear.to(self.device)
        self._sparse_linear = checkpoint.sparse_linear.to(self.device)
        self.dense_dim = int(checkpoint.colbert_linear.in_features)  # the hidden size
        self.colbert_dim = int(checkpoint.colbert_linear.out_features)
        return resolved

    def _load_onnx(self, folder: Path, device: str | None, dtype: DType) -> Precision:
        self.runtime = "onnxruntime"
        if device not in (None, "cpu"):
            raise InputError(
                f"{folder} is an ONNX export, which runs on the CPU (ONNX Runtime's CPU "
                f"provider); got device={device!r}: pass device='cpu' or the checkpoint itself"
            )
        self._onnx = OnnxModel(folder)
        manifest = self._onnx.manifest
        if dtype not in ("auto", manifest.precision):
            raise InputError(
                f"{folder} was exported in {manifest.precision}, and an ONNX export runs in the "
                f"precision it was exported in; got dtype={dtype!r}: pass dtype='auto' or "
                f"export again (m3vdb export-onnx{' --int8' if dtype == 'int8' else ''})"
            )
        self.device = torch.device("cpu")
        self.precision = manifest.precision
        self.dtype = torch.float32
        self.model_path = folder
        self.tokenizer = load_tokenizer(folder)
        self.max_length = manifest.max_positions
        self.dense_dim = manifest.hidden_size
        self.colbert_dim = manifest.colbert_dim
        return Precision(manifest.precision, torch.float32)

    def __repr__(self) -> str:
        return (
            f"M3Encoder({str(self.model_path)!r}, device={str(self.device)!r}, "
            f"dtype={self.precision!r}, runtime={self.runtime!r})"
        )

    def encode(
        self,
        texts: Sequence[str],
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
        max_length: int | None = None,
        show_progress: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[M3Embedding]:
        """Encodes ``texts``, each truncated to ``max_length`` tokens (special tokens included),
        as FlagEmbedding does.

        Args:
            texts: the texts; an empty list gives an empty list.
            dense / sparse / colbert: which outputs to compute (the others are None).
            max_length: truncation length; default and maximum: the model's (8192 for BGE-M3).
            show_progress: a tqdm bar counting tokens.
            progress: called after each forward pass with the tokens it encoded (a caller's
                own progress display: an indexing run shows tokens, not only documents).

        Returns:
            One ``M3Embedding`` per text, in input order.

        Raises:
            TypeError: ``texts`` is not a list of str (the message names the bad index).
            InputError: no output requested, or ``max_length`` out of range.
        """
        items = _check_texts(texts)
        self._check_outputs(dense, sparse, colbert)
        limit = self._check_max_length(max_length)
        if not items:
            return []
        ids = self.tokenize(items, max_length=limit)
        return self._encode_ids(ids, dense, sparse, colbert, show_progress, progress)

    def tokenize(
        self, texts: Sequence[str], *, max_length: int | None = None, truncate: bool = True
    ) -> list[list[int]]:
        """The token ids ``encode`` computes for ``texts``: special tokens included, each
        truncated to ``max_length`` (default and maximum: the model's length).

        Args:
            texts: the texts.
            max_length: truncation length.
            truncate: False keeps every token (``max_length`` is then ignored), so a caller
                can tell which texts are too long before encoding them.

        Raises:
            TypeError: ``texts`` is not a list of str (the message names the bad index).
            InputError: ``max_length`` out of range.
        """
        items = _check_texts(texts)
        limit = self._check_max_length(max_length)
        if not items:
            return []
        if self._token_ids is not None:
            return self._token_ids(items, max_length=limit if truncate else None)
        # verbose=False: counting the tokens of a long text (to split it into windows) is a
        # length we handle; transformers' "sequence length is longer than the specified
        # maximum" warning is not the user's business
        ids: list[list[int]] = self.tokenizer(  # type: ignore[operator]
            items,
            truncation=truncate,
            max_length=limit if truncate else None,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]
        return ids

    def encode_token_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
    ) -> list[M3Embedding]:
        """Encodes texts already tokenised by :meth:`tokenize`: ``encode_token_ids(tokenize(t))``
        equals ``encode(t)``. For callers that need the token counts before encoding (a
        server checking limits, a scheduler forming batches across requests).

        Raises:
            InputError: no output requested, or a sequence is empty or longer than the model.
        """
        self._check_outputs(dense, sparse, colbert)
        rows = [list(x) for x in ids]
        for index, row in enumerate(rows):
            if not 2 <= len(row) <= self.max_length:
                raise InputError(
                    f"ids[{index}] has {len(row)} tokens; expected 2 to {self.max_length} "
                    "(special tokens included): tokenize texts with M3Encoder.tokenize"
                )
        if not rows:
            return []
        return self._encode_ids(rows, dense, sparse, colbert, False)

    def encode_windows(
        self,
        texts: Sequence[str],
        *,
        window_tokens: int = 512,
        overlap_tokens: int = 64,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
        show_progress: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[WindowEmbedding]:
        """Splits each text into overlapping token windows and encodes each window on its own,
        instead of truncating: the way to index documents longer than a database can hold
        in one point (Qdrant caps a multivector at 1024 rows of 1024 floats).

        A window is CLS + up to ``window_tokens - 2`` consecutive tokens of the text + EOS;
        consecutive windows share ``overlap_tokens`` tokens. A text that fits gives one
        window equal to ``encode([text])``; an empty text gives one window with no tokens.

        ``progress`` is called after each forward pass with the tokens it encoded.

        Returns:
            The windows of every text, grouped by text in input order, each linked to its
            source (``text_index``) and its token and character span.
        """
        items = _check_texts(texts)
        self._check_outputs(dense, sparse, colbert)
        self._check_windows(window_tokens, overlap_tokens)
        if not items:
            return []
        plan = self.plan_windows(items, window_tokens, overlap_tokens)
        embeddings = self._encode_ids(plan.ids, dense, sparse, colbert, show_progress, progress)
        return plan.embeddings(items, embeddings)

    def plan_windows(
        self, texts: Sequence[str], window_tokens: int, overlap_tokens: int
    ) -> WindowPlan:
        """The token windows :meth:`encode_windows` encodes (ids with CLS and EOS, and each
        window's token and character span), for a caller that encodes them itself (the
        server's dynamic batcher).

        Raises:
            InputError: ``window_tokens`` or ``overlap_tokens`` out of range.
        """
        self._check_windows(window_tokens, overlap_tokens)
        # verbose=False: a text longer than the model is what windows are for; transformers'
        # "sequence length is longer than the specified maximum" is not the user's business
        encoded = self.tokenizer(  # type: ignore[operator]
            list(texts),
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return plan_windows(
            encoded["input_ids"],
            encoded["offset_mapping"],
            window_tokens=window_tokens,
            overlap_tokens=overlap_tokens,
            cls_id=self._cls_id,
            eos_id=self._eos_id,
        )

    def _check_windows(self, window_tokens: int, overlap_tokens: int) -> None:
        content = window_tokens - 2
        if not 3 <= window_tokens <= self.max_length:
            raise InputError(
                f"window_tokens={window_tokens} must be in [3, {self.max_length}], the model's "
                "length"
            )
        if not 0 <= overlap_tokens < content:
            raise InputError(
                f"overlap_tokens={overlap_tokens} must be >= 0 and < window_tokens - 2 = {content}"
            )

    def _check_outputs(self, dense: bool, sparse: bool, colbert: bool) -> None:
        if not (dense or sparse or colbert):
            raise InputError("nothing to compute: set at least one of dense, sparse, colbert")

    def _check_max_length(self, max_length: int | None) -> int:
        if max_length is None:
            return self.max_length
        if not 2 <= max_length <= self.max_length:
            raise InputError(
                f"max_length={max_length} is out of range: the model takes 2 to "
                f"{self.max_length} tokens (special tokens included)"
            )
        return max_length

    @torch.inference_mode()
    def _encode_ids(
        self,
        ids: list[list[int]],
        dense: bool,
        sparse: bool,
        colbert: bool,
        show_progress: bool,
        progress: Callable[[int], None] | None = None,
    ) -> list[M3Embedding]:
        lengths = [len(x) for x in ids]
        results: list[M3Embedding | None] = [None] * len(ids)
        batches = plan_batches(
            lengths,
            token_budget=self.token_budget,
            max_batch_size=self.max_batch_size,
            padded=self._onnx is not None,  # ONNX Runtime runs padded batches, torch packed ones
        )
        with tqdm(total=sum(lengths), unit="tok", disable=not show_progress, desc="encode") as bar:
            for batch in batches:
                for index, emb in zip(
                    batch, self._forward([ids[i] for i in batch], dense, sparse, colbert)
                ):
                    results[index] = emb
                done = sum(lengths[i] for i in batch)
                bar.update(done)
                if progress is not None:
                    progress(done)
        return results  # type: ignore[return-value]

    def _forward(
        self, ids: list[list[int]], dense: bool, sparse: bool, colbert: bool
    ) -> list[M3Embedding]:
        if self._onnx is not None:
            return self._onnx.forward(
                ids,
                pad_id=self._pad_id,
                unused_ids=self._unused_ids,
                dense=dense,
                sparse=sparse,
                colbert=colbert,
            )
        packing = Packing.of([len(x) for x in ids])
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=packing.total)
        hidden = self._packed(torch.from_numpy(flat).to(self.device), packing)

        dense_out: list[np.ndarray | None] = [None] * len(ids)
        sparse_out: list[dict[int, float] | None] = [None] * len(ids)
        colbert_out: list[np.ndarray | None] = [None] * len(ids)
        if dense:
            cls_rows = hidden[torch.tensor(packing.starts, device=self.device)]
            vectors = torch.nn.functional.normalize(cls_rows.float(), dim=-1)
            dense_out = list(vectors.cpu().numpy())
        if sparse:
            weights = torch.relu(self._sparse_linear(hidden)).squeeze(-1).float().cpu().numpy()
            sparse_out = list(sparse_weights(weights, flat, packing, self._unused_ids))
        if colbert:
            colbert_out = list(colbert_rows(hidden, packing, self._colbert_linear))
        return [M3Embedding(d, s, c) for d, s, c in zip(dense_out, sparse_out, colbert_out)]
