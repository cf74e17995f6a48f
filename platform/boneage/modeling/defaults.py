"""A project's training defaults: what each of its training runs starts from unless the run's request says otherwise
(`Project.settings["training"]`, plus two settings of the labelling loop beside it: `auto_retrain_after_labels` and
`next_case_strategy`), and how an admin changes them (the settings page,
`PATCH /api/projects/{p}/training-defaults/`).

A blank or null value puts a field back to the platform's default. A change is all or nothing: one bad field refuses
the whole patch and stores nothing. Every change is one audit record with what was set before and after.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from boneage.audit.actions import do_record
from boneage.modeling import conf
from boneage.modeling.actions import ModelingError, project_strategy
from boneage.modeling.training import INTEGER_KEYS, USER_KEYS, check_number, project_training_defaults
from boneage.studies.models import Project
from ml.active import NEXT_CASE_STRATEGIES
from ml.uncertainty import UNCERTAINTY_METHODS

NUMBERS = {key: USER_KEYS[key] for key in ("epochs", "batch_size", "lr", "max_seconds")}  # what a run may override
AUTO_RETRAIN = "auto_retrain_after_labels"  # a project setting beside `training`: 0 = off
AUTO_RETRAIN_BOUNDS = (0, 100_000)
NEXT_CASE = conf.NEXT_CASE_SETTING  # beside `training` too: what "Next case" serves when the request names nothing
CHOICES = {"uncertainty": UNCERTAINTY_METHODS, NEXT_CASE: NEXT_CASE_STRATEGIES}
BESIDE_TRAINING = (AUTO_RETRAIN, NEXT_CASE)  # stored at the top of Project.settings, not in its "training"
FIELDS = (*NUMBERS, *CHOICES, AUTO_RETRAIN)
HELP = {
    "epochs": "passes over the labelled studies",
    "batch_size": "studies per step",
    "lr": "peak learning rate (AdamW, warm-up then cosine)",
    "max_seconds": "a run stops after this long and ships what it has",
    "uncertainty": "mc: MC dropout around the plain reading; both: the mean of six test-time views with their spread "
                   "pooled with MC dropout (better ranked errors, ~4× the CPU per prediction)",
    AUTO_RETRAIN: "start a run by itself after this many new expert labels (0 = never)",
    NEXT_CASE: "which unlabelled study \"Next case\" opens: coreset, the most unlike the labelled ones in the model's "
               "features (saved 40 % of the labels on a two-site archive); uncertainty, the model's least sure; "
               "diverse, unsure and unlike the labelled ages; random, a representative sample (docs/active-learning.md)",
}


@dataclass(frozen=True)
class TrainingDefaults:
    custom: dict[str, Any]        # what the project sets; a field it does not set takes the platform's default
    fine_tune: dict[str, Any]     # what a run from the starter or the active model starts with
    from_scratch: dict[str, Any]  # what a run with init "fresh" starts with
    platform: dict[str, dict[str, Any]]  # {"fine_tune": …, "from_scratch": …} for a project that sets nothing


def training_defaults(project: Project) -> TrainingDefaults:
    blank = Project(settings={})
    return TrainingDefaults(_custom(project.settings or {}), _effective(project, True), _effective(project, False),
                            platform={"fine_tune": _effective(blank, True), "from_scratch": _effective(blank, False)})


def _custom(settings: Mapping[str, Any]) -> dict[str, Any]:
    custom = {key: value for key, value in settings.get("training", {}).items()
              if key in FIELDS and key not in BESIDE_TRAINING}
    custom.update({key: settings[key] for key in BESIDE_TRAINING if key in settings})
    return custom


def _effective(project: Project, fine_tune: bool) -> dict[str, Any]:
    config = project_training_defaults(project, fine_tune=fine_tune)
    return {**{key: config.get(key) for key in (*NUMBERS, *CHOICES) if key not in BESIDE_TRAINING},
            AUTO_RETRAIN: int((project.settings or {}).get(AUTO_RETRAIN, 0) or 0),
            NEXT_CASE: project_strategy(project)}


def check_training_defaults(patch: Any) -> dict[str, Any]:
    """A patch → {field: value, or None for "back to the default"}; a 400 that names the field otherwise."""
    if not isinstance(patch, Mapping):
        raise ModelingError(400, "invalid", "Send a JSON object of training defaults.")
    unknown = sorted(set(patch) - set(FIELDS))
    if unknown:
        raise ModelingError(400, "invalid", f"Unknown fields: {', '.join(unknown)}. Known: {', '.join(FIELDS)}.")
    checked: dict[str, Any] = {}
    for key, value in patch.items():
        if value is None or value == "":
            checked[key] = None
        elif key in CHOICES:
            if value not in CHOICES[key]:
                raise ModelingError(400, "invalid", f"{key} must be one of {', '.join(CHOICES[key])}, not {value!r}.",
                                    field=key)
            checked[key] = value
        else:
            checked[key] = _number(key, value)
    return checked


def _number(key: str, value: Any) -> int | float:
    if isinstance(value, str):  # a form's field
        try:
            value = float(value.strip())
        except ValueError:
            raise ModelingError(400, "invalid", f"{key} must be a number, not {value!r}.", field=key) from None
    bounds = AUTO_RETRAIN_BOUNDS if key == AUTO_RETRAIN else NUMBERS[key]
    return check_number(key, value, bounds, whole=key == AUTO_RETRAIN or key in INTEGER_KEYS)


def do_update_training_defaults(project: Project, patch: Any, *, actor=None) -> TrainingDefaults:
    """Check the whole patch, then store it and its audit record in one transaction (nothing half-written)."""
    checked = check_training_defaults(patch)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        settings = dict(locked.settings or {})
        training = dict(settings.get("training", {}))
        before = _custom(settings)
        for key, value in checked.items():
            target = settings if key in BESIDE_TRAINING else training
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        settings["training"] = training
        locked.settings = settings
        after = _custom(settings)
        if after != before:
            locked.save(update_fields=["settings"])
            do_record("project.training_defaults_changed", locked, actor=actor, project=locked, before=before,
                      after=after)
    project.settings = locked.settings
    return training_defaults(locked)


__all__ = ["TrainingDefaults", "check_training_defaults", "do_update_training_defaults",
           "training_defaults"]
