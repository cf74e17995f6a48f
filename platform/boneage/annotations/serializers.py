from __future__ import annotations

from rest_framework import serializers

from boneage.annotations.models import AgeLabel, MaskRevision


class MaskRevisionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, read_only=True, allow_null=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = MaskRevision
        fields = ["id", "parent", "author", "source", "quality", "area_fraction", "note", "turns", "created_at", "url"]

    def get_url(self, revision) -> str:
        return f"/api/masks/{revision.pk}/png/"


class AgeLabelSerializer(serializers.ModelSerializer):
    """With a `blind_view` in the context (boneage.review.visibility), values the viewer may not see are null."""

    author = serializers.CharField(source="author.username", default=None, read_only=True, allow_null=True)
    months = serializers.FloatField(allow_null=True, read_only=True, help_text="null when blind review hides it from you")
    months_hidden = serializers.SerializerMethodField()

    class Meta:
        model = AgeLabel
        fields = ["id", "months", "months_hidden", "source", "author", "base", "note", "created_at"]

    def get_months_hidden(self, label) -> bool:
        view = self.context.get("blind_view")
        return view is not None and not view.label_visible(label.study_id, label.author_id)

    def to_representation(self, label):
        data = super().to_representation(label)
        if data["months_hidden"]:
            data["months"] = None
        return data


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


class FrameWriteSerializer(serializers.Serializer):
    """POST /api/studies/{id}/frame/: the frame to read the film in (studies.frame); 0 and false read it as stored."""

    turns = serializers.IntegerField(min_value=0, max_value=3, help_text="np.rot90 k: counter-clockwise quarter turns "
                                     "from the stored film (3 = 90° clockwise)")
    inverted = serializers.BooleanField(help_text="read the film's polarity inverted")
    hand = serializers.ChoiceField(choices=["", "left", "right"], required=False, default="",
                                   help_text="two hands on one film: read the hand on this half of the film as read "
                                   "(after the turn), the other half dark; \"\" reads the whole film")
