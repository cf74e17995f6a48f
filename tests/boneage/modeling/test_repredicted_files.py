"""A batch re-prediction writes each study's mask and one attention sheet; the six overlays are drawn from the sheet
the first time somebody opens one, and look as the eager path draws them."""
from __future__ import annotations

import io

import numpy as np
import pytest
from boneage.modeling.prediction_files import (
    ATTENTION_PARTS,
    SHEET,
    heat_index,
    heatmap_png,
    heatmap_side,
    mask_png,
    overlay_from_sheet,
    sheet_png,
)
from PIL import Image

pytestmark = pytest.mark.django_db(transaction=True)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def smooth_maps(seed: int, shape=(40, 31)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return {part: np.sin(ys / (3 + k) + rng.normal()) * np.cos(xs / (2 + k)) for k, part in enumerate(ATTENTION_PARTS)}


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_overlay_drawn_from_the_sheet_is_the_overlay_drawn_at_once(seed):
    maps = smooth_maps(seed)
    sheet = sheet_png(maps)
    for part in ATTENTION_PARTS:
        assert np.array_equal(pixels(overlay_from_sheet(sheet, part)), pixels(heatmap_png(maps[part])))


@pytest.mark.django_db(transaction=False)
def test_a_flat_map_is_drawn_as_one_colour_not_divided_by_zero():
    assert np.array_equal(heat_index(np.full((5, 4), 3.0)), np.zeros((5, 4), np.uint8))


def test_a_re_predicted_study_gets_its_overlays_on_first_view(project, owner, member, register_model, add_studies,
                                                               api_as, temporary_media):
    from boneage.modeling.actions import do_repredict_project, get_predictor
    from boneage.modeling.models import Prediction
    from boneage.studies.derive import load_unit

    version = register_model(project)
    studies = add_studies(project, owner, 3, labelled=False)
    assert do_repredict_project(version.pk, batch_size=2) == 3
    folder = temporary_media / "predictions" / str(project.pk) / str(studies[0].pk) / f"v{version.pk}"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["mask.png", f"{SHEET}.png"])
    prediction = Prediction.objects.get(study=studies[0], model_version=version)
    assert sorted(prediction.attention) == sorted(ATTENTION_PARTS)

    client = api_as(member)
    response = client.get(f"/api/studies/{studies[0].pk}/predictions/{version.pk}/Att3_1.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    drawn = pixels(b"".join(response.streaming_content))
    assert (folder / "Att3_1.png").exists() and not (folder / "Att2_1.png").exists()  # drawn when asked, once

    unit = load_unit(studies[0].image)
    predictor = get_predictor(version)
    alone = predictor.predict(unit, studies[0].sex == "M", attention_side=heatmap_side(predictor)).attention["Att3_1"]
    eager = pixels(heatmap_png(alone))
    assert drawn.shape == eager.shape and drawn.shape[2] == 4
    # the batch and one image at a time may differ in the last float bit: a colour index moves by at most one step
    assert np.abs(drawn.astype(int) - eager.astype(int)).max() <= 8


def test_an_overlay_of_a_study_without_a_sheet_is_not_ready(project, owner, member, register_model, add_studies,
                                                             api_as, temporary_media):
    version = register_model(project)
    (study,) = add_studies(project, owner, 1, labelled=False)
    response = api_as(member).get(f"/api/studies/{study.pk}/predictions/{version.pk}/Att1_1.png")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.django_db(transaction=False)
def test_the_mask_file_is_one_bit_and_reads_back_as_black_and_white():
    mask = np.zeros((30, 20), np.uint8)
    mask[5:25, 4:12] = 255
    with Image.open(io.BytesIO(mask_png(mask))) as image:
        assert image.mode == "1"
        assert np.array_equal(np.asarray(image.convert("L")), mask)


def test_a_study_keeps_the_network_s_input_and_a_re_prediction_reads_the_same_age_from_it(
        project, owner, register_model, add_studies, temporary_media, settings):
    from boneage.modeling.actions import do_repredict_project, get_predictor
    from boneage.modeling.models import Prediction
    from boneage.studies.derive import ensure_derived_images, load_unit, load_work_image

    version = register_model(project)
    predictor = get_predictor(version)
    settings.NETWORK_WORK_SIDE = predictor.config.work_size  # the tiny test network works at 64 px
    studies = add_studies(project, owner, 2, labelled=False)
    images = [ensure_derived_images(study.image) for study in studies]
    work = load_work_image(images[0], predictor.config.work_size)
    full = load_unit(images[0])
    assert work is not None and (work.height, work.width) == full.shape
    assert load_work_image(images[0], predictor.config.work_size * 2) is None  # another network decodes in full

    images[1].work = ""  # derived before the copy existed: read from the full image
    images[1].save(update_fields=["work"])
    assert do_repredict_project(version.pk, batch_size=2) == 2
    for study in studies:
        stored = Prediction.objects.get(study=study, model_version=version)
        alone = predictor.predict(load_unit(study.image), study.sex == "M", mc_samples=0)
        assert stored.age_months == pytest.approx(alone.age_months, abs=0.01)


@pytest.mark.parametrize("overlap", ["on", "off"])
def test_a_re_prediction_stores_the_same_predictions_and_files_with_or_without_overlap(
        overlap, project, owner, register_model, add_studies, temporary_media, settings):
    """On a GPU worker the files and rows of one batch are written while the device predicts the next ("auto" turns
    that on there); here both ways run on the CPU and must give the same result, in order, with live progress."""
    from boneage.modeling.actions import do_repredict_project, get_predictor
    from boneage.modeling.models import Prediction
    from boneage.studies.derive import load_unit

    settings.REPREDICT_OVERLAP = overlap
    version = register_model(project)
    studies = add_studies(project, owner, 5, labelled=False)
    ticks: list[int] = []
    assert do_repredict_project(version.pk, batch_size=2, progress=lambda done, total: ticks.append(done)) == 5
    assert ticks == [2, 4, 5]
    predictor = get_predictor(version)
    for study in studies:
        stored = Prediction.objects.get(study=study, model_version=version)
        alone = predictor.predict(load_unit(study.image), study.sex == "M", mc_samples=0)
        assert stored.age_months == pytest.approx(alone.age_months, abs=0.01)
        folder = temporary_media / "predictions" / str(project.pk) / str(study.pk) / f"v{version.pk}"
        assert sorted(p.name for p in folder.iterdir()) == sorted(["mask.png", f"{SHEET}.png"])
