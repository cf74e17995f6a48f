"""Who may see and do what, as rules on values the apps pass in (docs/architecture.md): the project roles, and what
blind review hides from a viewer. The queries behind them belong to the apps that own the rows —
boneage.studies.access (memberships: check_project, check_study) and boneage.review.visibility (open review items:
blind_view, live_event) — and build these objects.

Outsiders get 404 (not 403): they must not learn a project exists.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    LABELER = "labeler", "Labeler"
    REVIEWER = "reviewer", "Reviewer"
    TRAINER = "trainer", "Trainer"
    ADMIN = "admin", "Admin"


ANY_ROLE: tuple[str, ...] = tuple(Role.values)
CAN_LABEL: tuple[str, ...] = ("labeler", "reviewer", "admin")
CAN_REVIEW: tuple[str, ...] = ("reviewer", "admin")
CAN_TRAIN: tuple[str, ...] = ("trainer", "admin")
CAN_INGEST: tuple[str, ...] = tuple(Role.values)
CAN_DELETE: tuple[str, ...] = ("admin",)  # deleting a study and its files


# --- blind review (Project.settings["review"]["blind"]; the whole rule: boneage.review.visibility) ----------

# Keys of audit before/after payloads (and review evidence) that carry an age or a disagreement's size.
VALUE_KEYS = frozenset({"months", "blind_months", "age_months", "std_months", "interval_months", "magnitude", "priority",
                        "evidence", "delta_months", "spread_months", "dice"})
OWN_VALUE_VERBS = frozenset({"label.saved", "label.imported"})


def redact(value: Any) -> Any:
    """A copy of an audit payload with every age value (VALUE_KEYS, at any depth) replaced by None."""
    if isinstance(value, dict):
        return {key: None if key in VALUE_KEYS and item is not None else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


class BlindView:
    """What one viewer may see of the age values on a project's studies (built by `blind_view`)."""

    def __init__(self, user, *, every_study: bool = False, studies: Iterable[int] = ()):
        self.user_id = getattr(user, "pk", None)
        self.every_study = every_study
        self.studies = frozenset(studies)

    def hides(self, study_id: int | None) -> bool:
        """Are other people's values on this study hidden? (Project-wide events have no study.)"""
        return study_id is not None and (self.every_study or study_id in self.studies)

    def model_hidden(self, study_id: int, has_open_item) -> bool:
        """The model's age on this study: hidden where others' values are and the study has an open item.
        `has_open_item`: a bool, or a callable asked only when it matters (it may query)."""
        return self.hides(study_id) and bool(has_open_item() if callable(has_open_item) else has_open_item)

    def label_visible(self, study_id: int, author_id: int | None) -> bool:
        return not self.hides(study_id) or (author_id is not None and author_id == self.user_id)

    # The same rules as filters on a study queryset annotated with `open_reviews` (0/1) and `label_author`
    # (web.api.worklist_queryset), for sorting: None when this viewer is shown everything.
    def hides_q(self) -> Q | None:
        if self.every_study:
            return Q(pk__isnull=False)
        return Q(pk__in=self.studies) if self.studies else None

    def model_hidden_q(self) -> Q | None:
        hides = self.hides_q()
        return hides & Q(open_reviews=1) if hides is not None else None

    def label_hidden_q(self) -> Q | None:
        hides = self.hides_q()
        return hides & ~Q(label_author=self.user_id) if hides is not None else None

    def event(self, data: dict[str, Any], *, study_id: int | None, actor_id: int | None, verb: str) -> dict[str, Any]:
        """A serialized AuditEvent with the values this viewer may not see redacted (`values_hidden` says so).

        The viewer's own label keeps its value; the label it replaced (`before`) may be someone else's, so not.
        """
        if not self.hides(study_id):
            return {**data, "values_hidden": False}
        own = verb in OWN_VALUE_VERBS and actor_id is not None and actor_id == self.user_id
        before = redact(data.get("before"))
        after = data.get("after") if own else redact(data.get("after"))
        hidden = before != data.get("before") or after != data.get("after")
        return {**data, "before": before, "after": after, "values_hidden": hidden}


def carries_values(event: dict[str, Any]) -> bool:
    """Does this live event carry a label's, a review item's or the model's age that blind review may hide? (No
    query: most events do not.)"""
    return (str(event.get("type", "")).startswith(("label.", "review.", "prediction.")) and event.get("study") is not None
            and any(key in VALUE_KEYS for key in event))


