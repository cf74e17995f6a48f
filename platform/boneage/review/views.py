"""Thin views of the review app: authorize (outsiders 404), parse, call one action, answer JSON."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from boneage.api_input import FormParser, JSONParser, MultiPartParser
from boneage.audit.models import AuditEvent
from boneage.audit.views import AuditEventSerializer
from boneage.review import actions, rules
from boneage.review.serializers import (
    BlindReadSerializer,
    ResolveSerializer,
    ReviewItemSerializer,
    ReviewSettingsSerializer,
)
from boneage.review.visibility import blind_view
from boneage.studies.access import CAN_REVIEW, check_project
from boneage.web.field_words import explanations_in_words

ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}}
ITEM_RESPONSES = {200: ReviewItemSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR}


def _item_body(item, user, role):
    blind = rules.review_settings(item.project)["blind"]
    return ReviewItemSerializer(item, context={"user": user, "role": role, "blind": blind}).data


class ReviewItemsView(GenericAPIView):
    serializer_class = ReviewItemSerializer

    @extend_schema(
        parameters=[OpenApiParameter("reason", OpenApiTypes.STR, many=True, description="model_vs_label, label_vs_label, "
                                     "mask_vs_mask, model_unsure, model_outside (repeat or comma-separate)"),
                    OpenApiParameter("state", OpenApiTypes.STR, enum=["open", "claimed", "unclaimed", "resolved",
                                                                      "dismissed", "closed", "all"])],
        responses={200: ReviewItemSerializer(many=True), 400: ERROR, 404: ERROR},
        summary="The review queue, highest priority first (open items, claimed ones included, by default)",
    )
    def get(self, request, project_id: int):
        project, role = check_project(request.user, project_id)
        filters = actions.check_queue_filters(request.query_params)
        page = self.paginate_queryset(actions.queue(project, **filters))
        blind = rules.review_settings(project)["blind"]
        body = self.get_paginated_response(
            ReviewItemSerializer(page, many=True, context={"user": request.user, "role": role, "blind": blind}).data)
        body.data["open_count"] = actions.open_count(project.pk)
        return body


class ReviewItemDetailView(APIView):
    @extend_schema(responses={200: ReviewItemSerializer, 404: ERROR}, summary="One review item (values hidden in blind "
                   "mode until you entered your own reading)")
    def get(self, request, item_id: int):
        item, role = actions.check_item(request.user, item_id)
        return Response(_item_body(item, request.user, role))


class ReviewItemClaimView(APIView):
    @extend_schema(request=None, responses=ITEM_RESPONSES,
                   summary="Claim an item: a lease for the project's lease_minutes (409 if another reviewer holds it)")
    def post(self, request, item_id: int):
        _, role = actions.check_item(request.user, item_id, CAN_REVIEW)
        item = actions.do_claim(int(item_id), request.user)
        return Response(_item_body(item, request.user, role))


class ReviewItemReleaseView(APIView):
    @extend_schema(request=None, responses=ITEM_RESPONSES, summary="Give a claimed item back to the queue")
    def post(self, request, item_id: int):
        _, role = actions.check_item(request.user, item_id, CAN_REVIEW)
        item = actions.do_release(int(item_id), request.user)
        return Response(_item_body(item, request.user, role))


class ReviewItemBlindReadView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(request=BlindReadSerializer, responses=ITEM_RESPONSES,
                   summary="Blind review: enter your own bone age before the others' values are shown")
    def post(self, request, item_id: int):
        _, role = actions.check_item(request.user, item_id, CAN_REVIEW)
        months = actions.check_months(request.data.get("months"))
        item = actions.do_blind_read(int(item_id), request.user, months)
        return Response(_item_body(item, request.user, role))


class ReviewItemResolveView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(request={"application/json": ResolveSerializer, "multipart/form-data": ResolveSerializer},
                   responses=ITEM_RESPONSES,
                   summary="Decide an item: accept_label, accept_model, new_value, mask (PNG) or dismiss (with a reason)",
                   description="The decision becomes the study's gold label or mask (source=review), which training "
                   "prefers. 409 when another reviewer holds the item, when it is already finished, or when blind review "
                   "needs your own reading first.")
    def post(self, request, item_id: int):
        item, role = actions.check_item(request.user, item_id, CAN_REVIEW)
        fields = {key: request.data.get(key) for key in ("decision", "months", "label", "reason", "note")}
        upload = request.FILES.get("file")
        decision = actions.check_decision(item, fields, upload.read() if upload is not None else None)
        item = actions.do_resolve(item.pk, request.user, decision)
        return Response(_item_body(item, request.user, role))


class ReviewSettingsView(APIView):
    parser_classes = [JSONParser]

    def _body(self, project, role):
        return {"settings": rules.review_settings(project), "defaults": rules.DEFAULTS,
                "explanations": rules.EXPLANATIONS, "words": explanations_in_words(rules.EXPLANATIONS),
                "can_edit": role == "admin"}

    @extend_schema(responses={200: ReviewSettingsSerializer, 404: ERROR},
                   summary="The project's disagreement rules: current values, defaults and what each one means")
    def get(self, request, project_id: int):
        project, role = check_project(request.user, project_id)
        return Response(self._body(project, role))

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: ReviewSettingsSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
                   summary="Change rule settings (admins); the rules then re-run for every study of the project")
    def patch(self, request, project_id: int):
        project, role = check_project(request.user, project_id, ("admin",))
        actions.do_update_settings(project, request.user, request.data)
        project.refresh_from_db()
        return Response(self._body(project, role))


class ProjectHistoryView(GenericAPIView):
    """Read-only by construction (no write method; the model refuses changes): project-wide events such as
    training runs, promotions, role changes, review settings and decisions, newest first."""

    serializer_class = AuditEventSerializer

    @extend_schema(parameters=[OpenApiParameter("verb", OpenApiTypes.STR, description="prefix, e.g. review. or model.")],
                   responses={200: AuditEventSerializer(many=True), 404: ERROR},
                   summary="The project's audit history, newest first (append-only)")
    def get(self, request, project_id: int):
        project, role = check_project(request.user, project_id)
        events = AuditEvent.objects.filter(project=project).select_related("actor").order_by("-created_at", "-id")
        if request.query_params.get("verb"):
            events = events.filter(verb__startswith=request.query_params["verb"])
        page = self.paginate_queryset(events)
        view = blind_view(project, request.user, role)
        return self.get_paginated_response(AuditEventSerializer(page, many=True, context={"blind_view": view}).data)


class AgreementView(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT, 404: ERROR},
                   summary="Agreement metrics: expert MAE, model MAE vs review decisions, mask Dice, what each rule did")
    def get(self, request, project_id: int):
        project, _ = check_project(request.user, project_id)
        return Response(actions.agreement(project))


@login_required
def review_page(request, project_id: int):
    try:
        project, role = check_project(request.user, project_id)
    except NotFound:
        raise Http404("No such project.")
    return render(request, "review.html", {"project": project, "role": role, "can_review": role in CAN_REVIEW,
                                           "nav": "review", "settings": rules.review_settings(project)})
