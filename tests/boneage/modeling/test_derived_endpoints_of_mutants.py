"""Every derived image of every accepted file of a small mutant set answers without a 5xx (issue 34).

A phantom hand is written as CR / DX DICOM (ml.phantoms.dicom: MONOCHROME1 and 2, several rescales), one instance per
mutant, and each copy is broken by a seeded RNG: bytes of its header values flipped, Rows / Columns changed, its pixel
data cut short, plus the byte-level and dataset mutations of the ingest fuzz (tests/dicom_mutants.py). Each goes
through the upload API or STOW; each accepted study then runs the pipeline's stages (derive, automask, predict with
a tiny real model) and every endpoint that serves something made from its pixels is fetched: the image (display and
full), the thumbnail, the masks, the prediction's mask and six attention maps, the SEG and SR exports, DICOMweb's
rendered image, frames and metadata. A film ingest accepted must be one every reader handles: none answers a 5xx.
"""
from __future__ import annotations

import random
import struct
from collections import Counter

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.boneage.dicomweb.helpers import stow, stow_body
from tests.dicom_mutants import mutate

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(600), pytest.mark.filterwarnings("ignore::UserWarning")]

MUTANTS, SEED = 40, 34
HEADER_VALUES = {  # (group, element): VR of the elements every reader sizes its work from
    (0x0028, 0x0010): "US", (0x0028, 0x0011): "US", (0x0028, 0x0100): "US", (0x0028, 0x0101): "US",
    (0x0028, 0x0102): "US", (0x0028, 0x0103): "US", (0x0028, 0x0002): "US", (0x0028, 0x0004): "CS",
    (0x0028, 0x1052): "DS", (0x0028, 0x1053): "DS",
}
SIDES = [1, 7, 8, 40, 95, 96, 97, 120, 300, 769, 4096, 65535]
KINDS = ("header_value", "rows_columns", "truncated_pixels", "header_value", "rows_columns", "truncated_pixels",
         "bit_flips", "absurd_value", "pixel_data_length", "wrong_length")


def phantom_files(count: int, tmp_path) -> list[bytes]:
    """One rendered phantom written `count` times: each its own instance (UIDs), photometric and rescale."""
    from ml.phantoms.dicom import write_dicom
    from ml.phantoms.render import render

    phantom = render(130.0, True, seed=SEED, size=96)
    files = []
    for index in range(count):
        path = tmp_path / f"phantom-{index}.dcm"
        write_dicom(path, phantom, f"m{index}", seed=SEED, index=index)
        files.append(path.read_bytes())
    return files


def value_at(data: bytes, group: int, element: int, vr: str) -> tuple[int, int] | None:
    """(offset, length) of an explicit-VR little-endian element's value in the file, None when it is not there."""
    at = data.find(struct.pack("<HH", group, element) + vr.encode())
    return None if at < 0 else (at + 8, struct.unpack("<H", data[at + 6:at + 8])[0])


def break_film(data: bytes, kind: str, rng: random.Random) -> bytes:
    mutable = bytearray(data)
    if kind == "header_value":
        for (group, element), vr in rng.sample(sorted(HEADER_VALUES.items()), rng.choice([1, 2, 3])):
            found = value_at(data, group, element, vr)
            if found and found[1]:
                offset, length = found
                mutable[offset + rng.randrange(length)] ^= rng.randrange(1, 256)
        return bytes(mutable)
    if kind == "rows_columns":  # swapped (the same bytes, another shape), shrunk (excess data) or any side
        (at_rows, _), (at_columns, _) = value_at(data, 0x0028, 0x0010, "US"), value_at(data, 0x0028, 0x0011, "US")
        rows, columns = struct.unpack("<H", data[at_rows:at_rows + 2])[0], struct.unpack("<H", data[at_columns:at_columns + 2])[0]
        rows, columns = rng.choice([(columns, rows), (rows // 2, columns), (rows, columns - 1),
                                    (rng.choice(SIDES), columns), (rows, rng.choice(SIDES))])
        mutable[at_rows:at_rows + 2], mutable[at_columns:at_columns + 2] = struct.pack("<H", rows), struct.pack("<H", columns)
        return bytes(mutable)
    if kind == "truncated_pixels":
        start = data.find(struct.pack("<HH", 0x7FE0, 0x0010) + b"OW") + 12
        return data[:rng.randrange(start, len(data))]
    return mutate(data, kind, rng)


def served(client, url: str, **headers) -> int:
    response = client.get(url, **headers)
    if hasattr(response, "streaming_content"):
        b"".join(response.streaming_content)  # a streamed body fails while it streams, not before
    return response.status_code


def derived_urls(study, version) -> list[tuple[str, dict]]:
    from boneage.modeling.prediction_files import PREDICTION_FILES

    urls = [(f"/api/studies/{study.pk}/{path}", {}) for path in (
        "image/", "image/?size=full", "thumbnail/", "masks/", "predictions/latest/", "export/seg/", "export/sr/")]
    urls += [(f"/api/studies/{study.pk}/predictions/{version.pk}/{part}.png", {}) for part in PREDICTION_FILES]
    urls += [(f"/api/masks/{revision.pk}/png/", {}) for revision in study.mask_revisions.all()]
    urls.append((f"/api/worklist-rows/{study.pk}/", {}))
    if study.study_instance_uid and study.series_instance_uid and study.sop_instance_uid:
        instance = (f"/dicomweb/projects/{study.project_id}/studies/{study.study_instance_uid}/series/"
                    f"{study.series_instance_uid}/instances/{study.sop_instance_uid}")
        urls += [(f"{instance}/rendered", {}), (f"{instance}/frames/1/rendered", {}),
                 (f"{instance}/metadata", {"HTTP_ACCEPT": "application/dicom+json"}),
                 (f"{instance}/frames/1", {"HTTP_ACCEPT": 'multipart/related; type="application/octet-stream"'}),
                 (instance, {"HTTP_ACCEPT": 'multipart/related; type="application/dicom"'})]
    return urls


def test_every_derived_image_of_every_accepted_mutant_answers_without_a_5xx(api_as, project, owner, member, outsider,
                                                                          register_model, tmp_path):
    from boneage.annotations.actions import do_automask
    from boneage.modeling.actions import do_predict_study
    from boneage.studies.derive import do_derive
    from boneage.studies.models import Study

    version = register_model(project)
    client, uploads = api_as(member), Counter()
    accepted: list[int] = []
    for index, data in enumerate(phantom_files(MUTANTS, tmp_path)):
        rng = random.Random(SEED * 1_000_003 + index)
        kind = KINDS[index % len(KINDS)]
        broken = break_film(data, kind, rng)
        if index % 2 == 0:
            response = client.post(f"/api/projects/{project.pk}/studies/",
                                   {"file": SimpleUploadedFile(f"{index}-{kind}.dcm", broken)}, format="multipart")
            assert response.status_code < 500, (index, kind, response.content)
            uploads[(kind, response.status_code)] += 1
            if response.status_code == 201:
                accepted.append(response.json()["id"])
        else:
            response = stow(client, project, stow_body(("application/dicom", broken)))
            assert response.status_code < 500, (index, kind, response.content)
            answer = pydicom.Dataset.from_json(response.json())
            uploads[(kind, "stow", response.status_code)] += 1
            for item in answer.get("ReferencedSOPSequence", []):
                accepted.append(Study.objects.get(project=project, sop_instance_uid=item.ReferencedSOPInstanceUID).pk)
    print(f"\n{len(accepted)} of {MUTANTS} accepted: {dict(uploads)}")
    assert 10 <= len(accepted) <= MUTANTS - 10  # a real mix: broken films that pass the gate and ones that do not

    answers: Counter = Counter()
    problems = []
    owner_client = api_as(owner)
    for study_id in accepted:
        do_derive(study_id) and do_automask(study_id)  # a stage that cannot go on records why on the study
        do_predict_study(study_id, version.pk)
        study = Study.objects.get(pk=study_id)
        for url, headers in derived_urls(study, version):
            status = served(owner_client, url, **headers)
            answers[status] += 1
            if status >= 500:
                problems.append(f"{url} of study {study_id} ({study.original_name}): {status}")
            if status == 200 and "/image/" in url:
                assert served(api_as(outsider), url) == 404
    print(f"answers: {dict(answers)}")
    assert problems == []
    assert answers[200] >= 10 * len(accepted) // 2  # most of it is really served, not refused
