"""Projects with role-based memberships, studies and their images, and the record of every upload."""
from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models

from boneage.core.access import Role
from boneage.core.pipeline import AutomaskState

__all__ = ["Role"]  # the roles are the core's (boneage.core.access); Membership.role uses them




DEFAULT_INTERVAL_LEVEL = 0.9


class Project(models.Model):
    name = models.CharField(max_length=120, help_text="unique per owner: a taken name says nothing of other teams")
    description = models.TextField(blank=True)
    deidentify = models.BooleanField(
        default=False, help_text="De-identify DICOM on ingest (PS3.15 Annex E basic profile, retain patient characteristics)"
    )
    settings = models.JSONField(default=dict, blank=True, help_text="Per-project options (review rules, auto-retrain ...)")
    # The bone ages this project labels (e.g. 0–228 for RSNA): labels outside are refused as typos.
    min_age_months = models.FloatField(default=0.0)
    max_age_months = models.FloatField(default=240.0)
    # The promotion gate (boneage.modeling.gate): a candidate becomes active only when it beats the active model
    # on the same held-out studies by a margin its bootstrap interval supports.
    auto_promote = models.BooleanField(default=True, help_text="Promote a candidate that passes the gate without asking")
    promotion_min_held_out = models.PositiveIntegerField(
        default=20, help_text="Fewest held-out studies the gate decides on; with fewer, nothing is promoted")
    promotion_confidence = models.FloatField(
        default=0.9, help_text="Level of the bootstrap interval of the mean gain (0.5–0.999)")
    promotion_min_gain_months = models.FloatField(
        default=0.0, help_text="The interval's lower end must exceed this gain in validation MAE (months)")
    # The DICOM node's called AE title that stores into this project (docs/dicomweb.md, "DICOM node").
    ae_title = models.CharField(max_length=16, unique=True, help_text="called AE title of the DICOM node for this "
                                "project: 1–16 characters, no backslash or control characters (studies.ae_titles)")
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["created_by", "name"], name="one_project_name_per_owner")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.ae_title:  # every way a project is made gets a free title derived from its name
            from boneage.studies.ae_titles import free_ae_title

            self.ae_title = free_ae_title(self.name, Project.objects.exclude(pk=self.pk))
        super().save(*args, **kwargs)

    @property
    def interval_level(self) -> float:
        """The level of every interval the platform states or uses (API, pages, review rules): one per project."""
        return float((self.settings or {}).get("interval_level", DEFAULT_INTERVAL_LEVEL))

    @interval_level.setter
    def interval_level(self, value: float) -> None:
        self.settings = {**(self.settings or {}), "interval_level": float(value)}


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class Sex(models.TextChoices):
    MALE = "M", "Male"
    FEMALE = "F", "Female"
    UNKNOWN = "", "Unknown"


def is_male(sex: str) -> bool | None:
    """A stored sex as the network's input takes it: True, False, or None when unknown."""
    return {"M": True, "F": False}.get(sex)  # Sex.MALE, Sex.FEMALE


class Study(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="studies")
    # The dedupe key: the SOPInstanceUID for DICOM, "sha256:<hex>" for PNG/JPEG.
    instance_key = models.CharField(max_length=128)
    study_instance_uid = models.CharField(max_length=64, blank=True)
    series_instance_uid = models.CharField(max_length=64, blank=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    external_id = models.CharField(max_length=64, blank=True, help_text="e.g. the RSNA id")
    sex = models.CharField(max_length=1, choices=Sex.choices, blank=True)
    chronological_age_months = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=16, default="upload")
    original_name = models.CharField(max_length=255)
    checksum = models.CharField(max_length=64, help_text="sha256 of the stored original bytes")
    automask_state = models.CharField(max_length=16, choices=AutomaskState.choices, default=AutomaskState.PENDING)
    automask_error = models.TextField(blank=True)
    film_check = models.JSONField(default=dict, blank=True, help_text="ml.gate's verdict on the film (read | corrected "
                                  "| flagged | refused) and its reason, from the automask stage")
    served_at = models.DateTimeField(null=True, blank=True, help_text="last handed out as the next case before any "
                                     "model scored it: concurrent labelers spread over the oldest studies")
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["project", "instance_key"], name="one_study_per_instance")]

    @property
    def display_name(self) -> str:
        """The one name every page shows: the external id (e.g. RSNA's), else the uploaded file's name."""
        return self.external_id or self.original_name or f"study {self.pk}"

    def __str__(self) -> str:
        return f"study {self.pk} ({self.original_name})"


class Image(models.Model):
    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="image")
    original = models.CharField(max_length=255, help_text="storage name of the original bytes")
    # Derived after commit by the cpu queue (or on first view): ingest itself stays close to raw decode speed.
    normalized = models.CharField(max_length=255, blank=True, help_text="16-bit PNG, bright bone, full size")
    display = models.CharField(max_length=255, blank=True, help_text="8-bit PNG, display size")
    work = models.CharField(max_length=255, blank=True,
                            help_text="16-bit PNG: the network's input (padded square, NETWORK_WORK_SIDE a side)")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    display_width = models.PositiveIntegerField(null=True, blank=True)
    display_height = models.PositiveIntegerField(null=True, blank=True)
    pixel_spacing_mm = models.FloatField(null=True, blank=True)
    photometric = models.CharField(max_length=16, blank=True)
    bits_stored = models.PositiveSmallIntegerField(null=True, blank=True)
    modality = models.CharField(max_length=16, blank=True, help_text="DICOM code string (VR CS, up to 16)")
    transfer_syntax = models.CharField(max_length=64, blank=True, help_text="the transfer syntax UID, e.g. 1.2.840.10008.1.2.4.70")
    media_type = models.CharField(max_length=32)
    # The stored values the normalized image shows black (0) and white (1): a viewer states window/level in them.
    value_black = models.FloatField(null=True, blank=True)
    value_white = models.FloatField(null=True, blank=True)
    # The frame the platform reads the film in (studies.frame, issue 29): the derived copies (normalized, display, work)
    # are the stored film inverted and then turned by np.rot90 k; the original file is never changed. Masks, boxes and
    # attention maps are in this frame; the SEG export turns its mask back to the original's grid.
    turns = models.PositiveSmallIntegerField(default=0, help_text="np.rot90 k (counter-clockwise quarter turns, 0-3) "
                                             "from the stored film to the frame the platform reads")
    inverted = models.BooleanField(default=False, help_text="the platform reads the film's polarity inverted")
    hand = models.CharField(max_length=8, blank=True, default="", help_text="two hands on one film: the half of the "
                            "film as read ('left' or 'right') whose hand the platform reads, the other half dark; '': all")
    frame_source = models.CharField(max_length=16, blank=True, default="", help_text="who set the frame: '' (as "
                                    "stored), 'film_check' (ml.gate was sure) or 'person' (a labeler, see the audit)")

    @property
    def read_height(self) -> int:
        """The height of the film as the platform reads it (of the derived copies and of every mask)."""
        return self.width if self.turns % 2 else self.height

    @property
    def read_width(self) -> int:
        return self.height if self.turns % 2 else self.width

    @property
    def copies_token(self) -> str:
        """Changes whenever the derived copies are made again (a new frame): the image URLs carry it, so a browser
        never shows a cached copy of another frame."""
        return self.display.rsplit("-", 1)[-1].removesuffix(".png") if self.display else ""


class IngestOutcome(models.TextChoices):
    ACCEPTED = "accepted"
    ALREADY_STORED = "already_stored"
    CONFLICT = "conflict"
    REJECTED = "rejected"


class IngestRecord(models.Model):
    """Every upload, accepted or not, so a rejected file stays visible with its reason."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ingest_records")
    user = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    file_name = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(default=0)
    checksum = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=16, default="api", help_text="api, browser, dicomweb, dimse, import_dicom, import_rsna")
    sender = models.CharField(max_length=128, blank=True, help_text="who sent it when no user did: the DICOM node's "
                              "calling AE title and peer address, e.g. 'MODALITY1 at 10.0.0.7:40112'")
    outcome = models.CharField(max_length=16, choices=IngestOutcome.choices)
    reason = models.CharField(max_length=64, blank=True)
    detail = models.TextField(blank=True)
    study = models.ForeignKey(Study, null=True, blank=True, on_delete=models.SET_NULL, related_name="ingest_records")
    seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
