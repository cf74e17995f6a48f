"""Blind review in one place: which age values a viewer may see while the project reviews blind.

`Project.settings["review"]["blind"]` on (rules.DEFAULTS: off):

- **In the queue** (`values_visible`): a reviewer or admin sees an item's values — the labels, the model's
  prediction, the size of the disagreement — once they entered their own reading for it, or once the item
  is finished; every other role never sees them there.
- **On a study** (`blind_view`: its labels, its history, the label shown with the study): a viewer outside
  the reviewer/admin roles (a labeler; a trainer, who reads no ages) sees only the age values they entered
  themselves. A reviewer or admin sees everything, except on a study with an open item whose values the
  queue rule still hides from them — there they see only their own values until they entered their reading.

A hidden value becomes null and the row says so (`months_hidden` / `values_hidden`); the row itself stays
(who, when, which id), so the timeline and the stale-base check of the label form still work.
"""
from __future__ import annotations

from typing import Any

from boneage.core.access import (  # noqa: F401  (the rules, importable from here too)
    CAN_REVIEW,
    OWN_VALUE_VERBS,
    VALUE_KEYS,
    BlindView,
    carries_values,
    redact,
)
from boneage.review import rules
from boneage.review.models import ItemState, ReviewItem
from boneage.studies.access import membership_role
from boneage.studies.models import Project


def values_visible(item: ReviewItem, user, role: str, blind: bool) -> bool:
    """The queue rule: may this user see the values of this review item?"""
    if not blind:
        return True
    if role not in CAN_REVIEW:
        return False
    return item.state != ItemState.OPEN or str(user.pk) in (item.blind_reads or {})


def live_event(event: dict[str, Any], user, project_id: int) -> dict[str, Any] | None:
    """A live event of a study as this socket's user may see it (the project socket calls this per event).

    Events that carry no value (VALUE_KEYS) pass unchanged without a query; one that does — a label saved, an item
    queued with its priority — loses the values that blind review hides from the user (`values_hidden`). None when
    the user is no member any more.
    """
    if not carries_values(event):
        return event
    role = membership_role(user, project_id)
    project = Project.objects.filter(pk=project_id).first()
    if role is None or project is None:
        return None
    if str(event.get("type", "")).startswith("prediction."):  # the model's age: the rule of the predictions API
        if not model_values_hidden(project, event["study"], user, role):
            return event
        return {**redact(event), "values_hidden": True}
    view = blind_view(project, user, role, study=event["study"])
    if not view.hides(event["study"]):
        return event
    if event.get("type") == "label.saved" and event.get("author_id") is not None and event["author_id"] == view.user_id:
        return event
    return {**redact(event), "values_hidden": True}


def blind_view(project, user, role: str, *, study=None) -> BlindView:
    """The BlindView of `user` (with `role`) on `project`, or on one `study` of it (fewer rows read)."""
    if not rules.review_settings(project)["blind"]:
        return BlindView(user)
    if role not in CAN_REVIEW:
        return BlindView(user, every_study=True)
    items = ReviewItem.objects.filter(project=project, state=ItemState.OPEN).only("study_id", "state", "blind_reads")
    if study is not None:
        items = items.filter(study=study)
    return BlindView(user, studies={item.study_id for item in items if not values_visible(item, user, role, True)})


def model_values_hidden(project, study_id: int, user, role: str) -> bool:
    """Blind review of a study's *model* reading (the predictions API, the worklist, live prediction events): hidden
    while the study has an open item whose values the queue rule hides from this user (a reviewer until they entered
    their reading; a labeler always). Studies without an open item show the model's age as usual — predictions are
    the platform's output, not review context."""
    view = blind_view(project, user, role, study=study_id)
    return view.model_hidden(study_id, lambda: ReviewItem.objects.filter(study_id=study_id, state=ItemState.OPEN).exists())
