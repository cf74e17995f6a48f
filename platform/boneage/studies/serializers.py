from __future__ import annotations

from rest_framework import serializers

from boneage.studies.models import IngestRecord, Project, Study


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    study_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "deidentify", "settings", "created_at", "role", "study_count"]
        read_only_fields = ["id", "created_at", "role", "study_count", "settings"]

    def get_role(self, project) -> str | None:
        return getattr(project, "my_role", None)


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    deidentify = serializers.BooleanField(required=False, default=False)

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
    image_url = serializers.SerializerMethodField()
    label = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = [
            "id", "project", "external_id", "sex", "chronological_age_months", "source", "original_name",
            "sop_instance_uid", "study_instance_uid", "checksum", "created_at", "automask_state",
            "automask_error", "width", "height", "media_type", "photometric", "image_url", "label", "state",
        ]

    def get_image_url(self, study) -> str:
        return f"/api/studies/{study.pk}/image/"

    def get_label(self, study) -> dict | None:
        from boneage.annotations.actions import current_label

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
