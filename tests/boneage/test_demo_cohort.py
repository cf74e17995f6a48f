"""The demo cohort reads like a clinic's (issue 32, row 11): every demo study has a chronological age near its bone
age, the same on every run, so the study page can say "vs chronological"."""
from __future__ import annotations

import io

import pytest
from boneage.studies.management.commands.demo_setup import CHRONOLOGICAL_SPREAD_MONTHS, chronological_age
from boneage.studies.models import Project
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_every_demo_study_arrives_with_a_chronological_age_near_its_bone_age(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("demo_setup", studies=8, unlabeled=2, no_model=True, stdout=io.StringIO())
    studies = list(Project.objects.get(name="Demo hands").studies.prefetch_related("age_labels"))
    assert len(studies) == 8 and all(s.chronological_age_months is not None for s in studies)
    for study in studies:
        assert 1 <= study.chronological_age_months <= 239
        for label in study.age_labels.all():
            assert abs(study.chronological_age_months - label.months) <= 4 * CHRONOLOGICAL_SPREAD_MONTHS
    assert len({s.chronological_age_months for s in studies}) > 1


def test_a_studys_chronological_age_is_the_same_on_every_run_and_stays_in_range():
    assert chronological_age("1159", 120.0) == chronological_age("1159", 120.0)
    assert chronological_age("1159", 120.0) != chronological_age("1160", 120.0)
    assert chronological_age("7", 0.0) >= 1 and chronological_age("8", 240.0) <= 239
