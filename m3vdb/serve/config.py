"""The server's settings and limits, as one frozen value (no web framework imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from m3vdb.errors import InputError


@dataclass(frozen=True)
class ServeConfig:
    """What ``m3vdb serve`` accepts and how it batches.

    Attributes:
        model_name: the served model's name in ``/info`` and ``GET /v1/models`` (the ``model``
            field of a request may be any string: one model is served).
        api_key: when set, every route but ``/health`` needs ``Authorization: Bearer KEY``.
        max_inputs_per_request: most texts in one request (413 above it); TEI calls it
            ``max_client_batch_size``.
        max_input_tokens: most tokens per text, special tokens included (413 above it unless
            the request asks to truncate); None: the model's length (8192 for BGE-M3).
        max_pending_inputs: most texts admitted and not yet answered, over all requests; a
            request that would exceed it gets 429 with ``Retry-After``.
        max_wait_s: how long the batcher waits after the first queued request for others to
            join its batch (the token budget filling up ends the wait sooner).
        max_body_bytes: largest request body (413 above it).
    """

    model_name: str = "BAAI/bge-m3"
    api_key: str | None = None
    max_inputs_per_request: int = 256
    max_input_tokens: int | None = None
    max_pending_inputs: int = 2048
    max_wait_s: float = 0.002
    max_body_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_inputs_per_request", "max_pending_inputs", "max_body_bytes"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_input_tokens is not None and self.max_input_tokens < 2:
            problems.append(
                f"max_input_tokens must be at least 2 (CLS and EOS), got {self.max_input_tokens}"
            )
        if self.max_wait_s < 0:
            problems.append(f"max_wait_s must be >= 0, got {self.max_wait_s}")
        if self.max_inputs_per_request > self.max_pending_inputs:
            problems.append(
                f"max_inputs_per_request ({self.max_inputs_per_request}) exceeds "
                f"max_pending_inputs ({self.max_pending_inputs}): such a request could never "
                "be admitted; raise max_pending_inputs or lower max_inputs_per_request"
            )
        if self.api_key is not None and not self.api_key.strip():
            problems.append("api_key is empty: pass a non-empty key or none")
        if problems:
            raise InputError("invalid server settings: " + "; ".join(problems))
