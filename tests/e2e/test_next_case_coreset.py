"""A labeler presses "Next case" and the study page says why that study: core-set chose the one least like the
labelled studies; pressing N there goes to a study unlike both, not to the near-duplicate of the one just opened."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.dicom_factory import png_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EMBEDDINGS = {"labelled": (0.0, 0.0), "far": (10.0, 0.0), "far_twin": (9.9, 0.0), "other": (0.0, 6.0)}


@pytest.fixture
def ranked(project, owner, ingest):
    """An active model whose predictions carry the embeddings above; the first study is labelled; core-set ranked."""
    from boneage.annotations.actions import do_save_label
    from boneage.modeling.coreset import embedding_bytes, rank_version
    from boneage.modeling.models import ModelVersion, Prediction

    studies = {}
    for shade, name in enumerate(EMBEDDINGS):  # a different image each: the same file twice is one study
        pixels = np.zeros((96, 80), np.uint8)
        pixels[20:80, 20:60] = 150 + 20 * shade
        studies[name] = ingest(project, owner, png_bytes(pixels), f"{name}.png", sex="F")
    version = ModelVersion.objects.create(project=project, name="v1", checkpoint="models/dummy.pt", sha256="0" * 64,
                                          status="active")
    for name, study in studies.items():
        Prediction.objects.create(study=study, model_version=version, age_months=100, std_months=5,
                                  embedding=embedding_bytes(EMBEDDINGS[name]))
    with ThreadPoolExecutor(1) as pool:  # the label's live event runs async_to_sync, which Playwright's loop refuses
        pool.submit(do_save_label, studies["labelled"], 90.0, author=owner).result()
    assert rank_version(version) == 3
    return studies


def test_next_case_opens_the_study_unlike_the_labelled_one_and_says_why(live_asgi_server, project, member, ranked,
                                                                        page_as):
    page = page_as(member)
    page.goto(f"{live_asgi_server}/projects/{project.pk}/")
    page.get_by_role("button", name="Next case →").click()
    page.wait_for_url(f"{live_asgi_server}/studies/{ranked['far'].pk}/")
    expect(page.locator("#chosen-by")).to_have_text(
        "Next case by coreset (rank 1): the least like the studies already labelled, in the model's features.")

    page.locator("#viewport").focus()
    page.keyboard.press("n")  # its near twin waits: the next study is the one unlike both
    page.wait_for_url(f"{live_asgi_server}/studies/{ranked['other'].pk}/")
    expect(page.locator("#chosen-by")).to_contain_text("Next case by coreset (rank 2)")

    page.goto(f"{live_asgi_server}/studies/{ranked['far_twin'].pk}/")  # opened from the worklist: no reason shown
    expect(page.locator("#chosen-by")).to_be_hidden()
