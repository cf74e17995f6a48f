"""The core under the apps (docs/architecture.md): the error type, the event registry, the signals, the layering."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_an_app_error_raised_by_an_action_is_the_documented_json_with_its_status_and_extras():
    from boneage.annotations.actions import AnnotationError
    from boneage.api import json_error_handler

    response = json_error_handler(AnnotationError(409, "stale_base_revision", "The mask changed.", newest_revision=7), {})
    assert response.status_code == 409
    assert response.data == {"error": "stale_base_revision", "detail": "The mask changed.", "newest_revision": 7}


def test_every_declared_event_passes_and_an_undeclared_event_or_field_is_refused(settings):
    from boneage.core.events import EVENTS, UnknownEvent, check_event

    settings.PROFILE = "test"
    check_event({"type": "study.ingested", "study": 1})
    check_event({"type": "prediction.failed", "study": 1, "reason": "time_limit", "detail": "slow"})  # optional absent
    with pytest.raises(UnknownEvent, match="no event 'study.renamed'"):
        check_event({"type": "study.renamed", "study": 1})
    with pytest.raises(UnknownEvent, match="undeclared colour"):
        check_event({"type": "study.ingested", "study": 1, "colour": "red"})
    with pytest.raises(UnknownEvent, match="missing detail"):
        check_event({"type": "mask.failed", "study": 1})
    assert all(name == event.name and event.doc for name, event in EVENTS.items())


def test_in_production_a_mismatched_event_is_logged_and_still_leaves(settings, caplog):
    from boneage.core.events import check_event

    settings.PROFILE = "prod"
    check_event({"type": "study.renamed"})
    assert "no event 'study.renamed'" in caplog.text


def test_each_app_hears_of_the_others_through_the_core_signals():
    from boneage.core import signals

    def receivers(signal) -> set[str]:
        found = (entry[1]() if isinstance(entry[1], weakref.ReferenceType) else entry[1] for entry in signal.receivers)
        return {receiver.__module__ for receiver in found if receiver is not None}

    assert receivers(signals.study_changed) == {"boneage.review.hooks", "boneage.pipeline.receivers"}  # + core-set
    assert receivers(signals.studies_changed) == {"boneage.review.hooks"}
    assert receivers(signals.study_ingested) == {"boneage.annotations.actions", "boneage.pipeline.receivers"}
    assert receivers(signals.label_saved) == {"boneage.modeling.training"}
    assert receivers(signals.model_promoted) == receivers(signals.training_queued) == {"boneage.pipeline.receivers"}


@pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
                    reason="import-linter is not installed (the dev extra)")
def test_the_layering_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO)])}
    result = subprocess.run([str(lint), "--no-cache"], check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 kept, 0 broken" in result.stdout
