"""Hostile and odd DICOM through ingest: pydicom's bundled files and 2,000 seeded mutants.

Every file is either accepted, and then its image is served, or refused with a reason; none is a 5xx or
a hang, each leaves an IngestRecord, and no file or folder is left that no study owns. Most mutants go
through the ingest action (the upload view is a thin wrapper around it); a sample goes through HTTP.
"""
from __future__ import annotations

import pytest

from tests.dicom_mutants import bundled_files
from tests.ingest_fuzz_support import FuzzTally, fuzz_mutants, ingest_over_http, leftovers

# pydicom warns about every odd element it reads; the refusals are what this test checks.
pytestmark = [pytest.mark.django_db, pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::UserWarning")]

MUTANTS, SEED, HTTP_EVERY = 2000, 18, 20


def test_every_bundled_pydicom_file_is_accepted_and_served_or_refused_with_a_reason(api_as, owner, project,
                                                                                   temporary_media):
    client, tally = api_as(owner), FuzzTally()
    for path in bundled_files():
        with open(path, "rb") as handle:
            ingest_over_http(client, project, path.rsplit("/", 1)[-1], handle.read(), tally)
    print("\nbundled:", tally.line(), dict(tally.reasons))
    assert tally.problems == []
    # The readable image files really are accepted (409/200: variants of one instance in other syntaxes), but for the
    # four without Study/Series UIDs (missing_uid) and the SEGs, which are not films (not_an_image).
    accepted = tally.outcomes["http 201"] + tally.outcomes["http 409"] + tally.outcomes["http 200"]
    assert tally.reasons["missing_uid"] == 4
    assert accepted + tally.reasons["missing_uid"] + tally.reasons["not_an_image"] >= 85
    assert leftovers(temporary_media, project) == []


def test_two_thousand_seeded_mutants_never_break_ingest(api_as, owner, project, temporary_media):
    from boneage.studies.models import IngestRecord

    direct, http = fuzz_mutants(api_as(owner), project, owner, MUTANTS, SEED, HTTP_EVERY)
    print("\nmutants, action:", direct.line(), "\nmutants, HTTP:", http.line(), "\nreasons:", dict(direct.reasons))
    assert direct.problems == [] and http.problems == []
    assert IngestRecord.objects.filter(project=project).count() == MUTANTS  # every attempt is on record
    assert leftovers(temporary_media, project) == []
    assert direct.outcomes["accepted"] > 50 and direct.outcomes["rejected"] > 500  # the mix is a real one
