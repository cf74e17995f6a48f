"""Read models for the browser: one request per worklist page, small thumbnails.

The worklist joins what the core APIs serve one study at a time (label, the active model's
prediction, open review items, the active-learning score) so the table needs a single request.
"""
from __future__ import annotations

import numpy as np
from django.core.files.storage import default_storage
from django.db.models import (
    Case,
    Exists,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from PIL import Image as PILImage
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.views import APIView

from boneage.annotations.models import CHECK_MASK_BELOW, AgeLabel, MaskRevision, MaskSource
from boneage.api import error_response
from boneage.core.storage import png_bytes
from boneage.modeling.actions import ModelingError, active_version, check_latest_prediction, ranking_strategy
from boneage.modeling.intervals import IntervalRule
from boneage.modeling.outside import outside_summary
from boneage.modeling.reprediction import replaced_version, stopped, under_way
from boneage.review.models import ReviewItem
from boneage.review.visibility import BlindView, blind_view
from boneage.studies.access import check_project, check_study
from boneage.studies.derive import ensure_derived_images
from boneage.studies.failures import failure_of
from boneage.studies.frame import describe
from boneage.studies.ingest.errors import IngestError

THUMB_SIDE = 96
ORDERINGS = {
    "-created_at": ["-created_at"], "created_at": ["created_at"],
    "chronological_age_months": [F("chronological_age_months").asc(nulls_last=True)],
    "-chronological_age_months": [F("chronological_age_months").desc(nulls_last=True)],
    # the sort_* keys are the values as this viewer may see them (blind_sort_keys): a hidden value sorts as missing
    "label": [F("sort_label").asc(nulls_last=True)], "-label": [F("sort_label").desc(nulls_last=True)],
    "prediction": [F("sort_pred").asc(nulls_last=True)], "-prediction": [F("sort_pred").desc(nulls_last=True)],
    "-uncertainty": [F("sort_std").desc(nulls_last=True)],
    "-error": [F("sort_error").desc(nulls_last=True)],  # largest disagreement first, whichever the sign
    "active": [F("is_labeled").asc(), F("active_score").desc(nulls_last=True), "created_at"],
    # the automatic masks most likely wrong first (a person's mask, or none, sorts last): ml.automask's quality
    "mask_quality": [F("canny_quality").asc(nulls_last=True)],
}
STATES = {"unlabeled", "labeled", "in_review"}
BY_LABEL_VALUE = {"label", "-label", "-error"}  # orders that would give away labels blind review hides


class WorklistRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    original_name = serializers.CharField()
    sex = serializers.CharField()
    chronological_age_months = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    width = serializers.IntegerField(source="image.width")
    height = serializers.IntegerField(source="image.height")
    thumb_url = serializers.SerializerMethodField()
    label_months = serializers.FloatField(allow_null=True, help_text="null when blind review hides it from you")
    label_hidden = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField(help_text="the active model's reading; while it has not read the "
                                                   "study yet (a re-prediction under way), the replaced model's, "
                                                   "with from_previous_model true and its model_name")
    active_score = serializers.FloatField(allow_null=True)
    open_reviews = serializers.IntegerField()
    state = serializers.SerializerMethodField()
    film_check = serializers.JSONField(help_text="ml.gate's verdict on the film and its reason (automask stage)")
    frame = serializers.SerializerMethodField(help_text="the frame the platform reads the film in (studies.frame): "
                                              "{source: '' as stored | film_check | person, as_stored, sentence}")
    mask_quality = serializers.FloatField(source="canny_quality", allow_null=True,
                                          help_text="the automatic (Canny) mask's quality score while it is the "
                                                    "study's current mask; null once a person or the model replaced it")
    failure = serializers.SerializerMethodField(help_text="null, or why the pipeline stopped for this study: {stage: "
                                                "derive | automask | predict, summary (a sentence), detail (as recorded)}")
    mask_to_check = serializers.SerializerMethodField(help_text=f"the current mask is automatic and scored below "
                                                                f"{CHECK_MASK_BELOW}: a labeler should check it first")

    def get_failure(self, study) -> dict | None:
        failure = failure_of(study.automask_state, study.automask_error)
        return failure.as_json() if failure else None

    def get_frame(self, study) -> dict:
        frame = describe(study.image)
        return {key: frame[key] for key in ("source", "as_stored", "sentence")}

    def get_mask_to_check(self, study) -> bool:
        return study.canny_quality is not None and study.canny_quality < CHECK_MASK_BELOW

    def get_thumb_url(self, study) -> str:
        token = study.image.copies_token  # new copies (a new frame, studies.frame) → a new URL past the browser's cache
        return f"/api/studies/{study.pk}/thumbnail/" + (f"?v={token}" if token else "")

    def get_label_hidden(self, study) -> bool:
        view = self.context.get("blind_view")  # boneage.review.visibility
        return view is not None and study.label_months is not None and not view.label_visible(study.pk, study.label_author)

    def to_representation(self, study):
        data = super().to_representation(study)
        if data["label_hidden"]:
            data["label_months"] = None
        return data

    def get_prediction(self, study) -> dict | None:
        reading = _reading(study, self.context)
        if reading is None:
            return None
        age, std, outside_flag, outside_reason, version, rule = reading
        which = {"model_version": version.pk, "model_name": version.name,
                 "from_previous_model": version.pk != self.context["active_version"].pk}
        view = self.context.get("blind_view")  # the model's age: hidden like /predictions/latest/ (visibility.py)
        # outside the model's experience (ml.ood): shown even in blind review, it tells nothing of the age
        outside = {"outside_experience": bool(outside_flag), "outside_reason": outside_reason or ""}
        if view is not None and view.model_hidden(study.pk, study.open_reviews):
            return {"age_months": None, "std_months": None, "interval_months": None, "values_hidden": True,
                    **which, **outside}
        interval = rule.around(age, std, outside["outside_experience"])
        return {"age_months": age, "std_months": std, "interval_months": [interval.low, interval.high],
                "interval_level": interval.level, "interval_calibrated": interval.calibrated,
                "interval_calibration": interval.calibration, "interval_note": interval.note, "values_hidden": False,
                **which, **outside}

    def get_state(self, study) -> str:
        if study.open_reviews:
            return "in_review"
        return "labeled" if study.label_months is not None else "unlabeled"


def _reading(study, context: dict):
    """(age, std, outside, outside_reason, version, interval rule) of the active model's reading, else of the model it
    replaced (a re-prediction under way), else None."""
    if study.pred_age is not None:
        return (study.pred_age, study.pred_std, study.pred_outside, study.pred_outside_reason,
                context["active_version"], context["interval_rule"])
    previous = context.get("previous_version")
    if previous is not None and getattr(study, "prev_age", None) is not None:
        return (study.prev_age, study.prev_std, study.prev_outside, study.prev_outside_reason, previous,
                context["previous_interval_rule"])
    return None


def row_context(project, version, view: BlindView) -> dict:
    """What every row of one worklist answer shares: the viewer's blind view, the active version, the one it replaced
    and each one's interval rule (built once per answer)."""
    previous = replaced_version(version)
    return {"blind_view": view, "active_version": version, "previous_version": previous,
            "interval_rule": IntervalRule.of(version.metrics if version else None, project),
            "previous_interval_rule": IntervalRule.of(previous.metrics, project) if previous else None}


def _open_review_items():
    """Open review items of the outer study (a subquery for the worklist's count)."""
    return ReviewItem.objects.filter(study=OuterRef("pk"), state="open")


def worklist_queryset(project, version, previous=None):
    labels = AgeLabel.objects.filter(study=OuterRef("pk")).annotate(rank=Case(
        When(source="review", then=Value(3)), When(source="expert", then=Value(2)), default=Value(1),
        output_field=IntegerField())).order_by("-rank", "-created_at", "-pk")
    open_items = _open_review_items()
    # the current mask's Canny quality; null when the current mask is a person's or the model's (or there is none)
    canny_quality = MaskRevision.objects.filter(study=OuterRef("pk")).order_by("-created_at", "-id").annotate(
        canny=Case(When(source=MaskSource.CANNY, then=F("quality")), default=None, output_field=FloatField()))
    # The active model's prediction and score are joins (one row per study: unique constraints), not subqueries, so
    # ordering 100k studies by them is one hash join and a top-N sort instead of 100k subquery runs (2.6 s → see
    # docs/benchmarks.md, growth figures).
    studies = project.studies.select_related("image").annotate(
        active_prediction=FilteredRelation("predictions", condition=Q(predictions__model_version=version)),
        # "most informative first" follows the scores "Next case" serves by default (the project's strategy)
        active_ranking=FilteredRelation("active_scores", condition=Q(
            active_scores__model_version=version, active_scores__strategy=ranking_strategy(project, version))),
    ).annotate(
        label_months=Subquery(labels.values("months")[:1], output_field=FloatField()),
        label_author=Subquery(labels.values("author_id")[:1], output_field=IntegerField()),
        pred_age=F("active_prediction__age_months"),
        pred_std=F("active_prediction__std_months"),
        pred_version=F("active_prediction__model_version_id"),
        pred_outside=F("active_prediction__outside"),
        pred_outside_reason=F("active_prediction__outside_reason"),
        active_score=F("active_ranking__score"),
        open_reviews=Case(When(Exists(open_items), then=Value(1)), default=Value(0), output_field=IntegerField()),
        canny_quality=Subquery(canny_quality.values("canny")[:1], output_field=FloatField()),
    )
    # the reading each row shows, which the orders by prediction, std and model–label gap sort by
    shown_age, shown_std = F("pred_age"), F("pred_std")
    if previous is not None:  # the replaced model's reading, shown until the active one has read the study
        studies = studies.annotate(previous_prediction=FilteredRelation(
            "predictions", condition=Q(predictions__model_version=previous))).annotate(
            prev_age=F("previous_prediction__age_months"), prev_std=F("previous_prediction__std_months"),
            prev_outside=F("previous_prediction__outside"),
            prev_outside_reason=F("previous_prediction__outside_reason"))
        shown_age, shown_std = Coalesce("pred_age", "prev_age"), Coalesce("pred_std", "prev_std")
    return studies.annotate(
        # EXISTS, not the label subquery: one index probe per row when the "active" order sorts every study
        is_labeled=Case(When(Exists(AgeLabel.objects.filter(study=OuterRef("pk"))), then=Value(1)), default=Value(0),
                        output_field=IntegerField()),
        shown_age=shown_age, shown_std=shown_std,
        abs_error=Case(When(Q(label_months__isnull=False) & Q(shown_age__isnull=False),
                            then=F("shown_age") - F("label_months")), default=None, output_field=FloatField()),
    )


class NullsLastIds:
    """Study ids ordered by a nullable key, nulls last, read as two parts the database can each walk in index order:
    the rows with the key (a join the planner turns inner, so prediction_by_std serves it and stops at the page),
    then the rows without it. One LEFT JOIN sorted by the key had to join and sort every row: 325 ms p95 at 100k
    studies. Sliced and counted like a queryset, which is all LimitOffsetPagination asks of it."""

    def __init__(self, with_key, without_key, all_rows):
        self.with_key = with_key.values_list("pk", flat=True)
        self.without_key = without_key.values_list("pk", flat=True)
        self.all_rows = all_rows

    def count(self) -> int:
        return self.all_rows.count()

    def __getitem__(self, window: slice) -> list[int]:
        start, stop = window.start or 0, window.stop
        ids = list(self.with_key[start:stop])
        if stop is None or len(ids) == stop - start:
            return ids
        rows_with_key = start + len(ids) if ids else self.with_key.count()
        return ids + list(self.without_key[max(start - rows_with_key, 0):stop - rows_with_key])


def blind_sort_keys(studies, view: BlindView):
    """Sort keys that hide what the rows hide: a value blind review hides from this viewer (the model's age and std,
    another person's label: BlindView's rules) sorts as if missing — otherwise the order would give it away."""
    size_of_error = Case(When(abs_error__lt=0, then=-F("abs_error")), default=F("abs_error"), output_field=FloatField())
    keys = {"sort_pred": F("shown_age"), "sort_std": F("shown_std"), "sort_label": F("label_months"),
            "sort_error": size_of_error}
    model_hidden, label_hidden = view.model_hidden_q(), view.label_hidden_q()
    if model_hidden is None or label_hidden is None:  # not blind, or nothing hidden from this viewer
        return studies.annotate(**keys)
    hidden_by = {"sort_pred": model_hidden, "sort_std": model_hidden, "sort_label": label_hidden,
                 "sort_error": model_hidden | label_hidden}
    return studies.annotate(**{key: Case(When(hidden_by[key], then=Value(None)), default=value, output_field=FloatField())
                               for key, value in keys.items()})


class WorklistView(GenericAPIView):
    serializer_class = WorklistRowSerializer

    @extend_schema(
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=sorted(STATES)),
                    OpenApiParameter("sex", OpenApiTypes.STR, enum=["M", "F"]),
                    OpenApiParameter("q", OpenApiTypes.STR, description="part of the file name or external id"),
                    OpenApiParameter("mask", OpenApiTypes.STR, enum=["check"],
                                     description=f"only studies whose current mask is automatic and scored below "
                                                 f"{CHECK_MASK_BELOW}"),
                    OpenApiParameter("ordering", OpenApiTypes.STR, enum=sorted(ORDERINGS))],
        responses=WorklistRowSerializer(many=True),
        summary="Worklist rows: each study with its label, the active model's prediction, review state and score",
    )
    def get(self, request, project_id: int):
        project, role = check_project(request.user, project_id)
        view = blind_view(project, request.user, role)
        version = active_version(project.pk)
        context = row_context(project, version, view)
        studies = worklist_queryset(project, version, context["previous_version"])
        state, sex, query, mask = (request.query_params.get(k) for k in ("state", "sex", "q", "mask"))
        if state and state not in STATES:
            return error_response(400, "invalid_filter", "state must be unlabeled, labeled or in_review.")
        if mask and mask != "check":
            return error_response(400, "invalid_filter", "mask must be check (the automatic masks a labeler should "
                                  "check first) or left out.")
        if mask == "check":
            studies = studies.filter(canny_quality__lt=CHECK_MASK_BELOW)
        # EXISTS / NOT EXISTS rather than the annotated columns: the planner estimates anti-joins well, whereas a
        # filter on a subquery's value looked like 1 row and got a nested loop that took 5 s at 10k studies.
        has_label, in_review = Exists(AgeLabel.objects.filter(study=OuterRef("pk"))), Exists(_open_review_items())
        if state == "in_review":
            studies = studies.filter(in_review)
        elif state == "labeled":
            studies = studies.filter(has_label, ~in_review)
        elif state == "unlabeled":
            studies = studies.filter(~has_label, ~in_review)
        if sex in ("M", "F"):
            studies = studies.filter(sex=sex)
        if query:
            studies = studies.filter(Q(original_name__icontains=query) | Q(external_id__icontains=query))
        ordering = request.query_params.get("ordering") or "-created_at"
        if ordering not in ORDERINGS:
            return error_response(400, "invalid_ordering", f"ordering must be one of {', '.join(sorted(ORDERINGS))}.")
        if ordering in BY_LABEL_VALUE and view.every_study:
            return error_response(400, "hidden_by_blind_review", "This project reviews blind: you see only your own "
                                  "labels, so the worklist cannot be ordered by label or by model–label gap.")
        # Deferred join: sort and page the narrow rows (ids and sort keys), then load the page's 50 full rows.
        # Sorting 100k full rows spilled to disk and took 460 ms (docs/benchmarks.md, growth figures).
        ids = blind_sort_keys(studies, view).order_by(*ORDERINGS[ordering], "-id").values_list("pk", flat=True)
        if ordering == "-uncertainty" and view.hides_q() is None and context["previous_version"] is None:
            # no std hidden and no earlier model's reading standing in: sort by the raw column
            ids = NullsLastIds(studies.filter(pred_std__isnull=False).order_by(F("pred_std").desc(), "-id"),
                               studies.filter(pred_std__isnull=True).order_by("-id"), all_rows=studies)
        page_ids = self.paginate_queryset(ids)
        loaded = studies.in_bulk(page_ids)
        page = [loaded[pk] for pk in page_ids]
        response = self.get_paginated_response(WorklistRowSerializer(page, many=True, context=context).data)
        response.data["active_model"] = {"id": version.pk, "name": version.name} if version else None
        # "predicting N / M" for a page opened while a re-prediction runs (boneage.modeling.reprediction)
        response.data["reprediction"] = under_way(version)
        # a re-prediction whose worker died: why, and (for a trainer) a button to run it again
        response.data["reprediction_stopped"] = stopped(version)
        # the banner's count (modeling.outside): most films outside the active model's experience, and what to do
        summary = outside_summary(project.pk) if version else None
        response.data["outside_summary"] = summary.as_json() if summary else None
        return response


class WorklistRowView(APIView):
    @extend_schema(responses=WorklistRowSerializer, summary="One worklist row (to refresh a row on a live event)")
    def get(self, request, study_id: int):
        study, role = check_study(request.user, study_id)
        version = active_version(study.project_id)
        from rest_framework.response import Response

        view = blind_view(study.project, request.user, role, study=study)
        context = row_context(study.project, version, view)
        row = worklist_queryset(study.project, version, context["previous_version"]).get(pk=study.pk)
        return Response(WorklistRowSerializer(row, context=context).data)


class ThumbnailView(APIView):
    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY},
                   summary=f"A small PNG of the study (longest side {THUMB_SIDE} px) for lists")
    def get(self, request, study_id: int):
        study, _ = check_study(request.user, study_id)
        try:
            image = ensure_derived_images(study.image, work_copy=False)
        except IngestError as error:
            return error_response(422, "image_undecodable", f"The stored original cannot be decoded: {error.detail}")
        with default_storage.open(image.display, "rb") as handle, PILImage.open(handle) as picture:
            picture.draft("L", (THUMB_SIDE, THUMB_SIDE))
            small = picture.convert("L")
            small.thumbnail((THUMB_SIDE, THUMB_SIDE))
            data = png_bytes(np.asarray(small), compress_level=3)
        response = HttpResponse(data, content_type="image/png")
        response["Cache-Control"] = "private, max-age=86400"
        return response


class PredictionStateView(APIView):
    """Lets the study page ask whether a prediction exists before fetching it, so a study without one costs no 404."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT},
                   summary="Whether the study has a prediction yet: {state: ready | no_model | prediction_pending, detail}")
    def get(self, request, study_id: int):
        from rest_framework.response import Response

        study, _ = check_study(request.user, study_id)
        try:
            check_latest_prediction(study)
        except ModelingError as missing:
            return Response({"state": missing.code, "detail": missing.detail})
        return Response({"state": "ready", "detail": ""})
