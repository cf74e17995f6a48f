from __future__ import annotations

from rest_framework import serializers

from boneage.annotations.actions import current_label
from boneage.studies.failures import failure_of
from boneage.studies.frame import describe
from boneage.studies.models import IngestRecord, Project, Role, Study


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    study_count = serializers.IntegerField(read_only=True)
    interval_level = serializers.FloatField(read_only=True, help_text="the level of every stated interval (0.9 = 90%)")

    class Meta:
        model = Project
        fields = ["id", "name", "description", "deidentify", "settings", "min_age_months", "max_age_months",
                  "interval_level", "auto_promote", "promotion_min_held_out", "promotion_confidence", "promotion_min_gain_months",
                  "ae_title", "created_at", "role", "study_count"]
        read_only_fields = ["id", "created_at", "role", "study_count", "settings", "min_age_months", "max_age_months",
                            "auto_promote", "promotion_min_held_out", "promotion_confidence",
                            "promotion_min_gain_months", "ae_title"]

    def get_role(self, project) -> str | None:
        return getattr(project, "my_role", None)


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    deidentify = serializers.BooleanField(required=False, default=False)
    min_age_months = serializers.FloatField(required=False, default=0.0, min_value=0, max_value=240)
    max_age_months = serializers.FloatField(required=False, default=240.0, min_value=0, max_value=240)

    def validate_name(self, value: str) -> str:
        # Unique per owner, and said so: the reply must not confirm that another team uses the name.
        owner = self.context["request"].user
        if Project.objects.filter(created_by=owner, name=value).exists():
            raise serializers.ValidationError("You already have a project with this name.")
        return value


class StudySerializer(serializers.ModelSerializer):
    width = serializers.IntegerField(source="image.width", read_only=True)
    height = serializers.IntegerField(source="image.height", read_only=True)
    media_type = serializers.CharField(source="image.media_type", read_only=True)
    photometric = serializers.CharField(source="image.photometric", read_only=True)
    value_black = serializers.FloatField(source="image.value_black", read_only=True, allow_null=True,
                                         help_text="the stored value shown black at full range (window/level unit)")
    value_white = serializers.FloatField(source="image.value_white", read_only=True, allow_null=True,
                                         help_text="the stored value shown white (MONOCHROME1: the lowest)")
    image_url = serializers.SerializerMethodField()
    frame = serializers.SerializerMethodField(help_text="the frame the platform reads the film in (studies.frame): "
                                              "turns, inverted, who set it, a sentence, and the read width and height "
                                              "that masks and boxes are in")
    label = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()
    failure = serializers.SerializerMethodField(help_text="null, or why the pipeline stopped for this study, in words "
                                                "(studies.failures)")

    class Meta:
        model = Study
        fields = [
            "id", "project", "external_id", "sex", "chronological_age_months", "source", "original_name",
            "sop_instance_uid", "study_instance_uid", "checksum", "created_at", "automask_state",
            "automask_error", "film_check", "width", "height", "media_type", "photometric", "value_black", "value_white", "image_url",
            "frame", "label", "state", "failure",
        ]

    def get_failure(self, study) -> dict | None:
        failure = failure_of(study.automask_state, study.automask_error)
        return failure.as_json() if failure else None

    def get_image_url(self, study) -> str:
        token = study.image.copies_token  # new copies (a new frame) → a new URL: no cached copy of the old frame
        return f"/api/studies/{study.pk}/image/" + (f"?v={token}" if token else "")

    def get_frame(self, study) -> dict:
        return describe(study.image)

    def get_label(self, study) -> dict | None:
        label = current_label(study)
        if label is None:
            return None
        view = self.context.get("blind_view")  # boneage.review.visibility: blind review hides others' values
        hidden = view is not None and not view.label_visible(study.pk, label.author_id)
        return {"id": label.pk, "months": None if hidden else label.months, "months_hidden": hidden,
                "source": label.source, "created_at": label.created_at}

    def get_state(self, study) -> str:
        return "labeled" if study.age_labels.all() else "unlabeled"


class IngestRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestRecord
        fields = ["id", "file_name", "size_bytes", "channel", "outcome", "reason", "detail", "study", "created_at"]


class ProjectUpdateSerializer(serializers.Serializer):
    """PATCH /api/projects/{p}/: the fields a project admin may change (validated again by do_update_project)."""

    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    min_age_months = serializers.FloatField(required=False, min_value=0, max_value=240)
    max_age_months = serializers.FloatField(required=False, min_value=0, max_value=240)
    # The promotion gate (README "Promotion"): who may become active, decided on the same held-out studies.
    auto_promote = serializers.BooleanField(required=False)
    promotion_min_held_out = serializers.IntegerField(required=False, min_value=1, max_value=100_000)
    promotion_confidence = serializers.FloatField(required=False, min_value=0.5, max_value=0.999)
    promotion_min_gain_months = serializers.FloatField(required=False, min_value=0, max_value=60)
    interval_level = serializers.FloatField(required=False, min_value=0.5, max_value=0.99,
                                            help_text="the level of every stated interval, e.g. 0.9 for 90%")
    ae_title = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=64,
                                     help_text="the DICOM node's called AE title for this project (1–16 characters, "
                                     "unique; checked by do_update_project)")


class MemberUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()


class MemberSerializer(serializers.Serializer):
    user = MemberUserSerializer()
    role = serializers.ChoiceField(choices=Role.choices)
    created_at = serializers.DateTimeField()


class MemberAddSerializer(serializers.Serializer):
    """The request of POST /members/ (documentation; boneage.studies.members validates it with clear errors)."""

    username = serializers.CharField(required=False, help_text="an existing account's username (or the new one's)")
    email = serializers.CharField(required=False, help_text="finds an existing account; with create, the new one's email")
    role = serializers.ChoiceField(choices=Role.choices)
    create = serializers.BooleanField(required=False, default=False, help_text="site staff only: create the account first")
    password = serializers.CharField(required=False, help_text="with create; without it the answer carries a set-password link")


class MemberAddedSerializer(MemberSerializer):
    created_account = serializers.BooleanField()
    set_password_url = serializers.CharField(allow_null=True, help_text="one-time link for a new account without password")


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
