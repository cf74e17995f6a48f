from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from boneage.audit.models import AuditEvent
from boneage.studies.access import check_study


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None, read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "verb", "object_type", "object_id", "before", "after"]


class StudyHistoryView(APIView):
    """Read-only by construction: this view has no write method, and the model refuses changes."""

    @extend_schema(responses=AuditEventSerializer(many=True), summary="The study's audit history, oldest first")
    def get(self, request, study_id: int):
        study, _ = check_study(request.user, study_id)
        events = AuditEvent.objects.filter(study=study).select_related("actor")
        return Response(AuditEventSerializer(events, many=True).data)
