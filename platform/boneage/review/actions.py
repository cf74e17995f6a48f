"""Actions of the review app: re-run the rules for a study, claim, read blind, resolve, change settings.

`check_*` authorize and validate (raising ReviewError or DRF's NotFound/PermissionDenied); `do_*`
change rows inside one transaction, record audit events and publish live events on commit. Lock
order everywhere: the Study row first, then review items — so rule runs and decisions never deadlock.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from PIL import Image as PILImage
from rest_framework.exceptions import NotFound

from boneage.annotations.actions import AnnotationError, check_mask_png, current_label, do_save_label, do_save_mask
from boneage.annotations.models import AgeLabel, LabelSource, MaskRevision, MaskSource
from boneage.audit.actions import do_record
from boneage.core.errors import AppError
from boneage.core.events import publish
from boneage.core.signals import review_settings_changed
from boneage.modeling.intervals import reading_interval
from boneage.modeling.models import ModelStatus, Prediction
from boneage.review import rules
from boneage.review.models import Decision, ItemState, Reason, ReviewItem, StudyAgreement
from boneage.studies.access import ANY_ROLE, check_project
from boneage.studies.models import Project, Study

logger = logging.getLogger(__name__)

AGE_DECISIONS = (Decision.ACCEPT_LABEL, Decision.ACCEPT_MODEL, Decision.NEW_VALUE)


class ReviewError(AppError):
    """A review request refused (boneage.core.errors)."""


# --- evidence ----------------------------------------------------------------------------------------

def _label_row(label: AgeLabel) -> rules.LabelRow:
    return rules.LabelRow(label.pk, label.months, label.source, getattr(label.author, "username", None),
                          label.author_id, label.created_at)


def judging_prediction(study: Study, labelled: bool) -> Prediction | None:
    """The prediction allowed to judge the study (rules module docstring): out-of-fold when labelled."""
    predictions = Prediction.objects.filter(study=study).select_related("model_version")
    if labelled:
        predictions = predictions.filter(out_of_fold=True)
    chosen = None
    for prediction in predictions.order_by("-created_at", "-id"):
        if prediction.model_version.status == ModelStatus.ACTIVE:
            return prediction
        chosen = chosen or prediction
    return chosen


def _load_mask(name: str) -> np.ndarray | None:
    try:
        with default_storage.open(name, "rb") as handle, PILImage.open(handle) as image:
            return np.asarray(image.convert("L")) >= 128
    except Exception:  # noqa: BLE001 — a missing/corrupt file means "no mask to compare", never a failed rule run
        logger.warning("review rules: cannot read mask %s", name)
        return None


def gather_evidence(study: Study, cache: StudyAgreement | None) -> rules.Evidence:
    labels = list(study.age_labels.select_related("author"))
    current = current_label(study)
    experts: dict[Any, AgeLabel] = {}
    for label in sorted(labels, key=lambda row: (row.created_at, row.pk)):
        if label.source == LabelSource.EXPERT:
            experts[label.author_id or f"anonymous-{label.pk}"] = label
    reviews = [label for label in labels if label.source == LabelSource.REVIEW]
    newest_review = max(reviews, key=lambda row: (row.created_at, row.pk)) if reviews else None
    prediction = judging_prediction(study, labelled=current is not None)
    prediction_row = None
    if prediction is not None:
        interval = reading_interval(prediction.age_months, prediction.std_months, prediction.model_version.metrics,
                                    study.project, prediction.outside)
        prediction_row = rules.PredictionRow(prediction.pk, prediction.model_version_id, prediction.model_version.name,
                                             prediction.age_months, prediction.std_months, prediction.out_of_fold,
                                             prediction.created_at, prediction.mask, (interval.low, interval.high),
                                             interval.level, (prediction.model_version.metrics or {}).get("std_median"),
                                             prediction.outside, prediction.outside_reason, prediction.ood_score,
                                             interval_note=interval.note)
    evidence = rules.Evidence(label=_label_row(current) if current else None,
                              expert_labels=[_label_row(label) for label in experts.values()],
                              newest_review_label=_label_row(newest_review) if newest_review else None,
                              prediction=prediction_row)
    _mask_evidence(study, evidence, cache)
    return evidence


def _mask_evidence(study: Study, evidence: rules.Evidence, cache: StudyAgreement | None) -> None:
    masks = list(study.mask_revisions.filter(source__in=[MaskSource.EXPERT, MaskSource.REVIEW]).order_by("created_at", "id"))
    if not masks:
        return
    newest = masks[-1]
    prediction = evidence.prediction
    if prediction is not None and prediction.mask:
        key = f"m{newest.pk}:p{prediction.id}"
        if cache is not None and cache.dice_model_key == key:
            evidence.dice_model = cache.dice_model
        else:
            a, b = _load_mask(newest.mask), _load_mask(prediction.mask)
            evidence.dice_model = rules.dice(a, b) if a is not None and b is not None else None
        evidence.dice_model_revision = newest.pk
        evidence.dice_model_review_after_prediction = (newest.source == MaskSource.REVIEW
                                                       and newest.created_at >= prediction.created_at)
    by_expert: dict[Any, MaskRevision] = {}
    for mask in masks:
        if mask.source == MaskSource.EXPERT:
            by_expert[mask.author_id or f"anonymous-{mask.pk}"] = mask
    if len(by_expert) >= 2:
        compared = sorted(by_expert.values(), key=lambda row: row.pk)
        revisions = tuple(row.pk for row in compared)
        key = "m" + ",".join(map(str, revisions))
        if cache is not None and cache.dice_experts_key == key[:80]:
            evidence.dice_experts = cache.dice_experts
        else:
            arrays = [array for array in (_load_mask(row.mask) for row in compared) if array is not None]
            values = [rules.dice(arrays[i], arrays[j]) for i in range(len(arrays)) for j in range(i + 1, len(arrays))]
            evidence.dice_experts = min(values) if values else None
        evidence.dice_experts_revisions = revisions
        evidence.review_mask_after_experts = (newest.source == MaskSource.REVIEW
                                              and all(newest.created_at >= row.created_at for row in compared))


# --- running the rules ---------------------------------------------------------------------------------

def open_count(project_id: int) -> int:
    return ReviewItem.objects.filter(project_id=project_id, state=ItemState.OPEN).count()


def _suppressed(study: Study, finding: rules.Finding) -> bool:
    """A reviewer already decided on exactly this evidence (same rows compared)."""
    return ReviewItem.objects.filter(study=study, reason=finding.reason, key=finding.key,
                                     state__in=[ItemState.RESOLVED, ItemState.DISMISSED]).exists()


def evaluate_study(study_id: int, *, cause: str = "manual") -> dict[str, list[int]]:
    """Re-run every rule for the study: open new items, refresh open ones, close those whose cause went away.

    Returns the item ids by what happened to them ({"opened", "updated", "closed"}).
    """
    done: dict[str, list[int]] = {"opened": [], "updated": [], "closed": []}
    with transaction.atomic():
        study = Study.objects.select_for_update(of=("self",)).select_related("project").filter(pk=study_id).first()
        if study is None:
            return done
        cache = StudyAgreement.objects.filter(study=study).first()
        settings = rules.review_settings(study.project)
        evidence = gather_evidence(study, cache)
        findings = rules.run_rules(evidence, settings)
        _store_agreement(study, evidence, cache)
        open_items = {item.reason: item for item in ReviewItem.objects.select_for_update().filter(study=study, state=ItemState.OPEN)}
        for reason, item in open_items.items():
            finding = findings.get(reason)
            if finding is None:
                _close(item, f"cause gone after {cause} change")
                done["closed"].append(item.pk)
            elif (item.key, round(item.priority, 6)) != (finding.key, round(finding.priority, 6)) or item.evidence != finding.evidence:
                item.key, item.magnitude, item.unit = finding.key, finding.magnitude, finding.unit
                item.priority, item.evidence = finding.priority, finding.evidence
                item.save(update_fields=["key", "magnitude", "unit", "priority", "evidence", "updated_at"])
                done["updated"].append(item.pk)
        for reason, finding in findings.items():
            if reason in open_items or _suppressed(study, finding):
                continue
            item = ReviewItem.objects.create(project=study.project, study=study, reason=reason, magnitude=finding.magnitude,
                                             unit=finding.unit, priority=finding.priority, evidence=finding.evidence,
                                             key=finding.key)
            do_record("review.queued", item, project=study.project, study=study,
                      after={"item": item.pk, "reason": reason, "magnitude": round(finding.magnitude, 4),
                             "priority": round(finding.priority, 3), "cause": cause})
            done["opened"].append(item.pk)
        if done["opened"] or done["closed"]:
            count = open_count(study.project_id)
            for item_id in done["opened"]:
                item = ReviewItem.objects.get(pk=item_id)
                publish(study.project_id, "review.queued", study=study.pk, item=item.pk, reason=item.reason,
                        priority=round(item.priority, 3), open_count=count)
            for item_id in done["closed"]:
                publish(study.project_id, "review.closed", study=study.pk, item=item_id, open_count=count)
    return done


def _close(item: ReviewItem, why: str) -> None:
    before = {"state": item.state, "reason": item.reason, "magnitude": round(item.magnitude, 4), "key": item.key}
    item.state, item.closed_reason, item.finished_at = ItemState.CLOSED, why[:255], timezone.now()
    item.claimed_by, item.lease_expires_at = None, None
    item.save(update_fields=["state", "closed_reason", "finished_at", "claimed_by", "lease_expires_at", "updated_at"])
    do_record("review.closed", item, project=item.project, study=item.study, before=before,
              after={"state": ItemState.CLOSED, "why": item.closed_reason})


def _store_agreement(study: Study, evidence: rules.Evidence, cache: StudyAgreement | None) -> None:
    values: dict[str, Any] = {
        "project_id": study.project_id,
        "label_months": evidence.label.months if evidence.label else None,
        "label_source": evidence.label.source if evidence.label else "",
        "prediction_id": evidence.prediction.id if evidence.prediction else None,
        "model_delta": (evidence.prediction.age_months - evidence.label.months)
        if evidence.prediction and evidence.label else None,
        "model_std": evidence.prediction.std_months if evidence.prediction else None,
        "expert_spread": (max(row.months for row in evidence.expert_labels) - min(row.months for row in evidence.expert_labels))
        if len(evidence.expert_labels) >= 2 else None,
        "dice_model": evidence.dice_model,
        "dice_model_key": f"m{evidence.dice_model_revision}:p{evidence.prediction.id}"
        if evidence.dice_model is not None and evidence.prediction else "",
        "dice_experts": evidence.dice_experts,
        "dice_experts_key": ("m" + ",".join(map(str, evidence.dice_experts_revisions)))[:80]
        if evidence.dice_experts is not None else "",
    }
    StudyAgreement.objects.update_or_create(study=study, defaults=values)


def evaluate_project(project_id: int, *, cause: str = "settings") -> dict[str, int]:
    """Re-run the rules for every study of the project (settings changed, or a batch import)."""
    totals = {"studies": 0, "opened": 0, "updated": 0, "closed": 0}
    for study_id in Study.objects.filter(project_id=project_id).order_by("pk").values_list("pk", flat=True).iterator():
        done = evaluate_study(study_id, cause=cause)
        totals["studies"] += 1
        for key, ids in done.items():
            totals[key] += len(ids)
    return totals


# --- access --------------------------------------------------------------------------------------------

def check_item(user, item_id, roles=None) -> tuple[ReviewItem, str]:
    """The item and the user's role in its project; NotFound for outsiders and unknown ids."""
    item = ReviewItem.objects.filter(pk=item_id).select_related("study", "project", "claimed_by", "resolved_by").first() \
        if str(item_id).isdigit() else None
    if item is None:
        raise NotFound("No such review item.")
    _, role = check_project(user, item.project_id, roles or ANY_ROLE, missing="No such review item.")
    return item, role


def check_queue_filters(params) -> dict[str, Any]:
    reasons = [value for raw in params.getlist("reason") for value in raw.split(",") if value]
    unknown = sorted(set(reasons) - set(Reason.values))
    if unknown:
        raise ReviewError(400, "invalid_filter", f"Unknown reason {', '.join(unknown)}; known: {', '.join(Reason.values)}.")
    state = params.get("state") or "open"
    if state not in ("open", "claimed", "unclaimed", "resolved", "dismissed", "closed", "all"):
        raise ReviewError(400, "invalid_filter",
                          "state must be open (default, claimed included), claimed, unclaimed, resolved, dismissed, closed or all.")
    return {"reasons": reasons, "state": state}


def queue(project: Project, *, reasons: list[str], state: str):
    items = ReviewItem.objects.filter(project=project).select_related("study", "claimed_by", "resolved_by")
    if reasons:
        items = items.filter(reason__in=reasons)
    now = timezone.now()
    active_lease = Q(state=ItemState.OPEN, claimed_by__isnull=False, lease_expires_at__gt=now)
    if state in ("open", "claimed", "unclaimed"):
        items = items.filter(state=ItemState.OPEN)
        if state == "claimed":
            items = items.filter(active_lease)
        elif state == "unclaimed":
            items = items.exclude(active_lease)
        return items.order_by("-priority", "id")
    if state != "all":
        items = items.filter(state=state)
    return items.order_by("-finished_at", "-priority", "id") if state != "all" else items.order_by("-priority", "id")


# --- claim, release, blind read --------------------------------------------------------------------------

def _check_open(item: ReviewItem) -> None:
    if item.state != ItemState.OPEN:
        why = f" ({item.closed_reason})" if item.closed_reason else ""
        raise ReviewError(409, "item_finished", f"This item is already {item.state}{why}; nothing to do.",
                          state=item.state)


def _check_not_held_by_other(item: ReviewItem, user) -> None:
    if item.lease_active() and item.claimed_by_id != user.pk:
        raise ReviewError(409, "claimed_by_other",
                          f"{item.claimed_by.username} holds this item until {item.lease_expires_at:%H:%M:%S} UTC; "
                          "it frees itself when the lease ends.",
                          claimed_by=item.claimed_by.username, lease_expires_at=item.lease_expires_at.isoformat())


def do_claim(item_id: int, user) -> ReviewItem:
    """Give the user a lease on the item (or extend their own). Two reviewers at once: one wins, one gets 409."""
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update(of=("self",)).select_related("project", "study").get(pk=item_id)
        _check_open(item)
        _check_not_held_by_other(item, user)
        minutes = rules.review_settings(item.project)["lease_minutes"]
        previous = item.claimed_by.username if item.lease_active() and item.claimed_by else None
        item.claimed_by, item.lease_expires_at = user, timezone.now() + timedelta(minutes=minutes)
        item.save(update_fields=["claimed_by", "lease_expires_at", "updated_at"])
        do_record("review.claimed", item, actor=user, project=item.project, study=item.study,
                  before={"claimed_by": previous}, after={"claimed_by": user.username,
                                                          "lease_expires_at": item.lease_expires_at.isoformat()})
        publish(item.project_id, "review.claimed", study=item.study_id, item=item.pk, claimed_by=user.username,
                lease_expires_at=item.lease_expires_at.isoformat(), open_count=open_count(item.project_id))
    return item


def do_release(item_id: int, user) -> ReviewItem:
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update(of=("self",)).select_related("project", "study").get(pk=item_id)
        _check_open(item)
        if not item.lease_active() or item.claimed_by_id != user.pk:
            raise ReviewError(409, "not_claimed_by_you", "You do not hold this item, so there is nothing to release.")
        item.claimed_by, item.lease_expires_at = None, None
        item.save(update_fields=["claimed_by", "lease_expires_at", "updated_at"])
        do_record("review.released", item, actor=user, project=item.project, study=item.study,
                  before={"claimed_by": user.username}, after={"claimed_by": None})
        publish(item.project_id, "review.released", study=item.study_id, item=item.pk, open_count=open_count(item.project_id))
    return item


def check_months(raw: Any, name: str = "months") -> float:
    try:
        months = float(raw)
    except (TypeError, ValueError):
        raise ReviewError(400, "invalid_months", f"{name} must be a number of months, not {raw!r}.")
    if not np.isfinite(months) or not 0 <= months <= 240:
        raise ReviewError(400, "invalid_months", f"{name} must be between 0 and 240 months, not {raw!r}.")
    return months


def do_blind_read(item_id: int, user, months: float) -> ReviewItem:
    """Record the reviewer's own reading before they see anyone else's (blind review). One per reviewer."""
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update(of=("self",)).select_related("project", "study").get(pk=item_id)
        _check_open(item)
        _check_not_held_by_other(item, user)
        if str(user.pk) in item.blind_reads:
            raise ReviewError(409, "already_read", "You entered your blind reading for this item already; "
                              "it cannot change once the other values were shown.")
        item.blind_reads = {**item.blind_reads, str(user.pk): months}
        item.save(update_fields=["blind_reads", "updated_at"])
        do_record("review.blind_read", item, actor=user, project=item.project, study=item.study,
                  after={"months": months})
    return item


# --- resolve ---------------------------------------------------------------------------------------------

def check_decision(item: ReviewItem, data: dict[str, Any], mask_png: bytes | None) -> dict[str, Any]:
    """Validate a decision against the item: returns {"decision", "months"?, "reason"?, "label"?, "mask"?}."""
    decision = data.get("decision")
    if decision not in Decision.values:
        raise ReviewError(400, "invalid_decision", f"decision must be one of {', '.join(Decision.values)}, not {decision!r}.")
    out: dict[str, Any] = {"decision": decision, "note": str(data.get("note") or "")[:200]}
    evidence = item.evidence
    if decision == Decision.DISMISS:
        reason = str(data.get("reason") or "").strip()
        if not reason:
            raise ReviewError(400, "reason_required", "Say why you dismiss this item (field 'reason').")
        out["reason"] = reason[:255]
    elif decision == Decision.NEW_VALUE:
        if data.get("months") in (None, ""):
            raise ReviewError(400, "months_required", "A new value needs 'months' (0–240).")
        out["months"] = check_months(data.get("months"))
    elif decision == Decision.ACCEPT_LABEL:
        candidates = {row["id"]: row for row in evidence.get("labels", [])}
        if evidence.get("label"):
            candidates[evidence["label"]["id"]] = evidence["label"]
        wanted = data.get("label")
        if wanted in (None, "") and len(candidates) == 1:
            chosen = next(iter(candidates.values()))
        elif wanted in (None, ""):
            current = current_label(item.study)
            if candidates or current is None:
                raise ReviewError(400, "label_required" if candidates else "no_label",
                                  f"Say which label you accept (field 'label', one of {sorted(candidates)})." if candidates
                                  else "This study has no label to accept.")
            chosen = {"id": current.pk, "months": current.months}
        else:
            if not str(wanted).isdigit() or int(wanted) not in candidates:
                raise ReviewError(400, "invalid_label", f"label must be one of the compared labels {sorted(candidates)}, not {wanted!r}.")
            chosen = candidates[int(wanted)]
        out["months"], out["label"] = float(chosen["months"]), int(chosen["id"])
    elif decision == Decision.ACCEPT_MODEL:
        prediction = evidence.get("prediction")
        if not prediction:
            raise ReviewError(400, "no_prediction", "This item compares no model output, so there is none to accept.")
        out["prediction"] = prediction["id"]
        if item.reason == Reason.MASK_VS_MASK:
            stored = Prediction.objects.filter(pk=prediction["id"]).values_list("mask", flat=True).first()
            if not stored:
                raise ReviewError(409, "model_mask_missing", "The model's mask for this item is gone; correct the mask instead.")
            out["model_mask"] = stored
        else:
            out["months"] = float(prediction["age_months"])
    elif decision == Decision.MASK:
        if not mask_png:
            raise ReviewError(400, "mask_required", "A corrected mask needs the PNG in the 'file' field (multipart).")

        try:
            out["mask"] = check_mask_png(item.study, mask_png)
        except AnnotationError as error:
            raise ReviewError(error.status, error.code, error.detail)
    return out


def do_resolve(item_id: int, user, decision: dict[str, Any]) -> ReviewItem:
    """Apply a checked decision: the gold label/mask (source=review), the item's outcome, the audit event."""
    item = ReviewItem.objects.select_related("project").get(pk=item_id)
    blind = rules.review_settings(item.project)["blind"]
    with transaction.atomic():
        study = Study.objects.select_for_update(of=("self",)).select_related("project", "image").get(pk=item.study_id)
        item = ReviewItem.objects.select_for_update(of=("self",)).select_related("project", "study").get(pk=item_id)
        _check_open(item)
        _check_not_held_by_other(item, user)
        if blind and str(user.pk) not in item.blind_reads:
            raise ReviewError(409, "blind_read_required", "This project reviews blind: enter your own reading first "
                              "(POST /api/review-items/{id}/blind-read/), then decide.")
        before_label = current_label(study)
        kind = decision["decision"]
        outcome: dict[str, Any] = {key: value for key, value in decision.items() if key in ("months", "reason", "label", "prediction", "note") and value not in (None, "")}
        if str(user.pk) in item.blind_reads:
            outcome["blind_months"] = item.blind_reads[str(user.pk)]
        note = f"review item {item.pk}: {kind}"
        try:
            if "months" in decision and kind in AGE_DECISIONS:
                label = do_save_label(study, decision["months"], author=user, source=LabelSource.REVIEW,
                                      enforce_base=False, note=note)
                outcome["gold_label"] = label.pk
            if kind == Decision.MASK:
                revision = do_save_mask(study, decision["mask"], source=MaskSource.REVIEW, author=user,
                                        enforce_base=False, note=note)
                outcome["gold_mask"] = revision.pk
            elif kind == Decision.ACCEPT_MODEL and "model_mask" in decision:
                model_mask = _load_mask(decision["model_mask"])
                if model_mask is None:
                    raise ReviewError(409, "model_mask_missing", "The model's mask file cannot be read; correct the mask instead.")
                shape = (study.image.read_height, study.image.read_width)  # the frame the film is read in
                if model_mask.shape != shape:
                    model_mask = _resize_nearest(model_mask, shape)
                revision = do_save_mask(study, model_mask, source=MaskSource.REVIEW, author=user,
                                        enforce_base=False, note=note)
                outcome["gold_mask"] = revision.pk
        except AnnotationError as error:
            raise ReviewError(error.status, error.code, error.detail)
        item.state = ItemState.DISMISSED if kind == Decision.DISMISS else ItemState.RESOLVED
        item.decision, item.outcome, item.resolved_by = kind, outcome, user
        item.finished_at, item.claimed_by, item.lease_expires_at = timezone.now(), None, None
        item.save(update_fields=["state", "decision", "outcome", "resolved_by", "finished_at", "claimed_by",
                                 "lease_expires_at", "updated_at"])
        do_record("review.dismissed" if kind == Decision.DISMISS else "review.resolved", item, actor=user,
                  project=item.project, study=study,
                  before={"label": {"months": before_label.months, "source": before_label.source} if before_label else None,
                          "reason": item.reason, "evidence": item.evidence},
                  after={"decision": kind, **outcome})
        publish(item.project_id, "review.resolved", study=study.pk, item=item.pk, reason=item.reason, decision=kind,
                state=item.state, open_count=open_count(item.project_id))
    return item


def _resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    ys = (np.arange(shape[0]) * mask.shape[0] // shape[0]).clip(0, mask.shape[0] - 1)
    xs = (np.arange(shape[1]) * mask.shape[1] // shape[1]).clip(0, mask.shape[1] - 1)
    return mask[ys][:, xs]


# --- settings --------------------------------------------------------------------------------------------

def do_update_settings(project: Project, user, patch: Any) -> dict[str, Any]:
    """Validate and store new review settings, then re-run the rules for the whole project (on commit, in a task)."""
    try:
        with transaction.atomic():
            locked = Project.objects.select_for_update().get(pk=project.pk)
            before = rules.review_settings(locked)
            merged = rules.merge_settings(before, patch)
            locked.settings = {**(locked.settings or {}), "review": merged}
            locked.save(update_fields=["settings"])
            do_record("review.settings_changed", locked, actor=user, project=locked, before=before, after=merged)
            publish(locked.pk, "review.settings", settings=merged)
            review_settings_changed.send(sender=Project, project_id=locked.pk)  # review.hooks: re-run the rules
    except rules.SettingsError as error:
        raise ReviewError(400, "invalid_settings", str(error))
    return merged


# --- agreement metrics -------------------------------------------------------------------------------------

def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    array = np.asarray(values, dtype=float)
    return {"n": int(array.size), "mean": round(float(array.mean()), 4), "median": round(float(np.median(array)), 4),
            "p10": round(float(np.percentile(array, 10)), 4), "p90": round(float(np.percentile(array, 90)), 4)}


DICE_BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001)


def agreement(project: Project) -> dict[str, Any]:
    """MAE between experts, model MAE against review decisions and labels, mask Dice, what each rule did."""
    latest: dict[tuple[int, Any], float] = {}
    for study_id, author_id, months in (AgeLabel.objects.filter(study__project=project, source=LabelSource.EXPERT)
                                        .order_by("created_at", "id").values_list("study_id", "author_id", "months")):
        latest[(study_id, author_id)] = months
    by_study: dict[int, list[float]] = {}
    for (study_id, _), months in latest.items():
        by_study.setdefault(study_id, []).append(months)
    pair_diffs = [abs(a[i] - a[j]) for a in by_study.values() if len(a) >= 2 for i in range(len(a)) for j in range(i + 1, len(a))]

    decided = ReviewItem.objects.filter(project=project, state=ItemState.RESOLVED, decision__in=AGE_DECISIONS)
    model_vs_review = [abs(item.evidence["prediction"]["age_months"] - item.outcome["months"])
                       for item in decided.only("evidence", "outcome")
                       if item.evidence.get("prediction") and "months" in item.outcome]
    agreements = StudyAgreement.objects.filter(project=project)
    model_vs_labels = [abs(value) for value in agreements.exclude(model_delta=None).values_list("model_delta", flat=True)]
    dice_model = list(agreements.exclude(dice_model=None).values_list("dice_model", flat=True))
    dice_experts = list(agreements.exclude(dice_experts=None).values_list("dice_experts", flat=True))
    histogram = np.histogram(dice_model, bins=DICE_BINS)[0].tolist() if dice_model else [0] * (len(DICE_BINS) - 1)

    counts: dict[str, dict[str, Any]] = {reason: {"opened": 0, "open": 0, "resolved": {}, "dismissed": 0, "closed": 0}
                                         for reason in Reason.values}
    for row in (ReviewItem.objects.filter(project=project).values("reason", "state", "decision")
                .annotate(n=Count("id"))):
        entry = counts[row["reason"]]
        entry["opened"] += row["n"]
        if row["state"] == ItemState.RESOLVED:
            entry["resolved"][row["decision"]] = entry["resolved"].get(row["decision"], 0) + row["n"]
        else:
            entry[row["state"]] += row["n"]
    mae = lambda values: round(float(np.mean(values)), 3) if values else None
    return {
        "experts": {"mae_months": mae(pair_diffs), "pairs": len(pair_diffs),
                    "studies": sum(1 for values in by_study.values() if len(values) >= 2)},
        "model_vs_review": {"mae_months": mae(model_vs_review), "n": len(model_vs_review),
                            "note": "the prediction shown to the reviewer vs the gold value they decided"},
        "model_vs_labels": {"mae_months": mae(model_vs_labels), "n": len(model_vs_labels),
                            "note": "out-of-fold predictions vs current labels (review > expert > import)"},
        "mask_dice": {"model_vs_expert": {**_summary(dice_model), "bins": list(DICE_BINS[:-1]) + [1.0],
                                          "histogram": histogram},
                      "expert_vs_expert": _summary(dice_experts)},
        "rules": counts,
        "open_count": open_count(project.pk),
    }
