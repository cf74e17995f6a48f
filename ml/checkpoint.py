"""One-file checkpoints: weights, model/train config, metrics, calibration, training-set fingerprint and
code version. Written to a temp name in the same folder, fsynced, renamed; sha256 returned."""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ml.models import ModelConfig, UnifiedNet, build_model

FORMAT = "boneage-unified/1"

# The starter weights shipped with the code (light preset, trained on 1,500 phantoms by `make starter-weights`;
# ml/weights/README.md has the command and its result). Fine-tuned on a project's labels by `make run`.
SHIPPED_STARTER = Path(__file__).resolve().parent / "weights" / "starter-light.pt"


# The shipped starter's held-out calibration scores (|error| / std of its readings of 200 phantoms no training used,
# seed 55555), kept beside it because the starter file predates stored scores (`interval_calibration_scores`).
STARTER_INTERVAL_SCORES = SHIPPED_STARTER.with_name("starter-interval-scores.json")


def resolve_checkpoint(name: str | Path) -> Path:
    """A checkpoint path, or the word `starter` for the shipped starter weights (the CLIs' --ckpt / --init)."""
    return SHIPPED_STARTER if str(name) == "starter" else Path(name)


# ModelConfig fields added after the first checkpoints were written, with the values those checkpoints
# were trained with (their defaults then), so an older file still rebuilds the network it was trained as.
LEGACY_MODEL_KEYS = {"att_pre_post": 1, "att_trunk": 2, "final_units": 3, "standardize": False}


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def code_version() -> str:
    """sha256 (12 hex) of the ml.models sources: changes whenever the architecture code does."""
    h = hashlib.sha256()
    for p in sorted((Path(__file__).parent / "models").glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class Checkpoint:
    model_config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""
    code_version: str = ""
    created: float = 0.0
    # the out-of-distribution reference (ml.ood.OODReference.to_payload); {} for checkpoints written before it
    ood: dict[str, Any] = field(default_factory=dict)

    def build(self) -> UnifiedNet:
        """The model with these weights (raises CheckpointError if they do not fit the architecture)."""
        model = build_model(self.model_config)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0:3]
            raise CheckpointError(f"weights do not match architecture {self.model_config}: {' '.join(first)}") from None
        return model


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: torch.nn.Module, model_config: ModelConfig, *,
                    train_config: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                    calibration: dict[str, float] | None = None, fingerprint: str = "",
                    ood: dict[str, Any] | None = None) -> str:
    """Atomically write the checkpoint; returns its sha256. A crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT, "model_config": model_config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_config": train_config or {}, "metrics": metrics or {}, "calibration": calibration or {},
        "fingerprint": fingerprint, "code_version": code_version(), "created": time.time(),
    }
    if ood:
        payload["ood"] = ood
    return _write_atomic(path, payload)


def store_ood_reference(path: str | Path, ood: dict[str, Any]) -> str:
    """Rewrite a checkpoint with `ood` (ml.ood.OODReference.to_payload) as its out-of-distribution reference, all
    else byte-for-byte as loaded (weights, configs, metrics, created); returns the new sha256. How the shipped starter
    got its reference (ml/weights/README.md)."""
    path = Path(path)
    load_checkpoint(path)  # refuses a foreign or corrupt file before anything is written
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["ood"] = ood
    return _write_atomic(path, payload)


def _write_atomic(path: Path, payload: dict[str, Any]) -> str:
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint (CPU tensors). Missing, corrupt or foreign files → CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — torch raises many types for truncated/garbled zips and pickles
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: incompatible checkpoint format {found!r}; this code reads {FORMAT!r}")
    try:
        config = ModelConfig.from_dict({**LEGACY_MODEL_KEYS, **payload["model_config"]})
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incompatible model config: {exc}") from None
    ckpt = Checkpoint(config, payload["state_dict"], payload.get("train_config", {}), payload.get("metrics", {}),
                      payload.get("calibration", {}), payload.get("fingerprint", ""), payload.get("code_version", ""),
                      payload.get("created", 0.0), payload.get("ood") or {})
    return ckpt


def interval_calibration_scores(path: str | Path, checkpoint: Checkpoint | None = None) -> list[float]:
    """A checkpoint's held-out calibration scores (ml.uncertainty.conformal_scores): those it stores, or for the
    shipped starter, which stores none, STARTER_INTERVAL_SCORES; [] when it has none."""
    stored = (checkpoint or load_checkpoint(path)).metrics.get("interval_scores")
    if stored:
        return list(stored)
    if Path(path).resolve() == SHIPPED_STARTER and STARTER_INTERVAL_SCORES.is_file():
        import json

        return list(json.loads(STARTER_INTERVAL_SCORES.read_text())["interval_scores"])
    return []
