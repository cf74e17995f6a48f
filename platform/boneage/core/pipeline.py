"""The states of what happens to a study after ingest (derive → automask → predict → review rules); the stages
themselves are boneage.pipeline's (docs/architecture.md)."""
from __future__ import annotations

from django.db import models


class AutomaskState(models.TextChoices):
    """Study.automask_state: the Canny hand mask of a new study (or why there is none)."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"  # the images could not be derived, or the automask raised: Study.automask_error says why
