from __future__ import annotations

from rest_framework import serializers

from boneage.annotations.models import AgeLabel, MaskRevision


class MaskRevisionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = MaskRevision
        fields = ["id", "parent", "author", "source", "quality", "area_fraction", "note", "created_at", "url"]

    def get_url(self, revision) -> str:
        return f"/api/masks/{revision.pk}/png/"


class AgeLabelSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, read_only=True)

    class Meta:
        model = AgeLabel
        fields = ["id", "months", "source", "author", "base", "note", "created_at"]


class MaskUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="PNG of the image's size; pixels ≥ 128 are hand")
    base_revision = serializers.IntegerField(required=False, allow_null=True, help_text="the revision you edited")
    note = serializers.CharField(required=False, allow_blank=True, default="")
    force = serializers.BooleanField(required=False, default=False, help_text="keep mine as a new revision after a 409")


class LabelWriteSerializer(serializers.Serializer):
    months = serializers.FloatField(min_value=0, max_value=240)
    base_label = serializers.IntegerField(required=False, allow_null=True)
    note = serializers.CharField(required=False, allow_blank=True, default="")
    force = serializers.BooleanField(required=False, default=False)
