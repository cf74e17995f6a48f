"""A killed default-recipe run continues where it stopped (`python -m ml.train --data DIR --out CKPT --resume`).

After every epoch of its segmenter and regressor stages the recipe writes its state beside the checkpoint it will
write (`CKPT.resume.pt`, atomically: a kill mid-write leaves the previous epoch's state), so a kill loses at most the
epoch in progress. The same command with `--resume` reads it and goes on from the next epoch, its time budget counting
the time already spent. The state belongs to one data set and one set of recipe settings: another folder or other
settings are refused by name, never silently mixed. The state is removed once the checkpoint is written, or when the
run is cancelled.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ml.data import DataError, Sample, fingerprint

RESUME_SUFFIX = ".resume.pt"
STAGES = ("segmenter", "regressor")


@dataclass
class StageState:
    """Where a recipe run stands after an epoch: the stage it is in and how far, the whole model, the stage's
    optimizer and random generator, and the time spent (the budget counts it)."""

    stage: str                       # "segmenter" | "regressor"
    epochs_done: int                 # of this stage
    stage_seconds: float             # this stage's time so far
    stage_budget: float              # this stage's share of the budget, fixed when the stage began
    recipe_seconds: float            # the whole run's time so far
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # finished stages' metrics, the regressor's curve so far


def resume_path(out: Path) -> Path:
    return out.with_name(out.name + RESUME_SUFFIX)


def run_key(samples: list[Sample], settings: dict[str, Any]) -> str:
    """What a state belongs to: the training set (ids, ages, sexes, masks) and the recipe's settings."""
    text = fingerprint(samples) + json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save_state(out: Path, key: str, state: StageState) -> None:
    if state.stage not in STAGES:
        raise ValueError(f"unknown stage {state.stage!r}")
    path = resume_path(out)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"key": key, **asdict(state)}, tmp)
    os.replace(tmp, path)


def load_state(out: Path, key: str) -> StageState | None:
    """The state a killed run left for `out`; None when there is none. DataError when it was written for other data or
    settings, or cannot be read."""
    path = resume_path(out)
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as error:  # truncated, foreign
        raise DataError(f"{path}: cannot read the resume state ({type(error).__name__}: {error}); delete it to start "
                        "over") from None
    if saved.pop("key", None) != key:
        raise DataError(f"{path} was written by a run on other data or with other recipe settings; run the same "
                        "command as before, or delete it to start over")
    return StageState(**saved)


def clear_state(out: Path) -> None:
    resume_path(out).unlink(missing_ok=True)
    resume_path(out).with_name(resume_path(out).name + ".tmp").unlink(missing_ok=True)
