"""An outsider learns nothing from ids: for every operation of the schema, someone else's existing id and an
id that does not exist get the same status and the same body."""
from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from tests.dicom_factory import png_bytes

pytestmark = pytest.mark.django_db

ABSENT = 987654321


@pytest.fixture
def others_objects(owner, project):
    """One object of each kind an id in a URL can name, all in the owner's project."""
    from boneage.annotations.models import MaskRevision
    from boneage.modeling.models import ModelVersion, TrainingRun
    from boneage.review.models import ReviewItem
    from boneage.studies.actions import do_ingest

    study = do_ingest(project, owner, png_bytes(np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)), "h.png").study
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/x.pt", sha256="0" * 64,
                                          status="active")
    return {
        "project_id": project.pk, "study_id": study.pk, "version_id": version.pk,
        "revision_id": MaskRevision.objects.create(study=study, source="canny", mask="m.png").pk,
        "run_id": TrainingRun.objects.create(project=project).pk,
        "item_id": ReviewItem.objects.create(project=project, study=study, reason="model_label", magnitude=30,
                                             unit="months", priority=1, key="k").pk,
        "user_id": owner.pk, "part": "mask",
    }


def operations(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path, methods in schema["paths"].items():
        if "{" in path:
            for method in methods:
                if method in ("get", "post", "put", "patch", "delete"):
                    yield method, path


def test_someone_elses_id_and_an_absent_id_get_the_same_answer_on_every_operation(api_as, owner, outsider,
                                                                                  others_objects):
    client = api_as(outsider)
    compared = not_found = 0
    for method, path in operations(api_as(owner)):
        names = re.findall(r"{(\w+)}", path)
        assert set(names) <= set(others_objects), f"no fixture object for {path}"
        existing = path.format(**{n: others_objects[n] for n in names})
        absent = path.format(**{n: (others_objects[n] if n == "part" else ABSENT) for n in names})
        answers = []
        for url in (existing, absent):
            response = getattr(client, method)(url, {}, format="json")
            answers.append((response.status_code, response.content))
        assert answers[0] == answers[1], f"{method.upper()} {path}: {answers[0]} vs {answers[1]}"
        # 404, or a refusal of the body's media type that comes before any lookup (the same for both ids)
        assert answers[0][0] in (404, 415), f"{method.upper()} {path}: {answers[0]}"
        compared += 1
        not_found += answers[0][0] == 404
    assert compared > 20 and not_found > 20
