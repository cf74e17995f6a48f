from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from boneage.audit.models import AuditEvent
from boneage.review.visibility import blind_view
from boneage.studies.access import check_study


class AuditEventSerializer(serializers.ModelSerializer):
    """With a `blind_view` in the context (boneage.review.visibility), values the viewer may not see are null."""

    actor = serializers.CharField(source="actor.username", default=None, read_only=True, allow_null=True)
    values_hidden = serializers.SerializerMethodField(help_text="blind review hid age values of this event from you")

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "verb", "object_type", "object_id", "before", "after", "values_hidden"]

    def get_values_hidden(self, event) -> bool:
        return False  # set by the blind view in to_representation

    def to_representation(self, event):
        data = super().to_representation(event)
        view = self.context.get("blind_view")
        if view is None:
            return {**data, "values_hidden": False}
        return view.event(data, study_id=event.study_id, actor_id=event.actor_id, verb=event.verb)


class StudyHistoryView(APIView):
    """Read-only by construction: this view has no write method, and the model refuses changes."""

    @extend_schema(responses=AuditEventSerializer(many=True), summary="The study's audit history, oldest first",
                   description="In blind review the age values a viewer may not see yet are null (`values_hidden`).")
    def get(self, request, study_id: int):
        study, role = check_study(request.user, study_id)
        events = AuditEvent.objects.filter(study=study).select_related("actor")
        view = blind_view(study.project, request.user, role, study=study)
        return Response(AuditEventSerializer(events, many=True, context={"blind_view": view}).data)
