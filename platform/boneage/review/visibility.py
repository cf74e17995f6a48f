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

from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from boneage.review.models import ItemState, ReviewItem
from boneage.studies.access import CAN_REVIEW

# Keys of audit before/after payloads (and review evidence) that carry an age or a disagreement's size.
VALUE_KEYS = frozenset({"months", "blind_months", "age_months", "std_months", "magnitude", "priority", "evidence",
                        "delta_months", "spread_months", "dice"})
OWN_VALUE_VERBS = frozenset({"label.saved", "label.imported"})


def values_visible(item: ReviewItem, user, role: str, blind: bool) -> bool:
    """The queue rule: may this user see the values of this review item?"""
    if not blind:
        return True
    if role not in CAN_REVIEW:
        return False
    return item.state != ItemState.OPEN or str(user.pk) in (item.blind_reads or {})


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


def live_event(event: dict[str, Any], user, project_id: int) -> dict[str, Any] | None:
    """A live event of a study as this socket's user may see it (the project socket calls this per event).

    Events that carry no value (VALUE_KEYS) pass unchanged without a query; one that does — a label saved, an item
    queued with its priority — loses the values that blind review hides from the user (`values_hidden`). None when
    the user is no member any more.
    """
    if not carries_values(event):
        return event
    from boneage.studies.access import membership_role
    from boneage.studies.models import Project

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
    from boneage.review import rules

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
