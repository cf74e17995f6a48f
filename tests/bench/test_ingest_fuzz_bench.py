"""The ingest fuzz at bench scale: 10,000 seeded mutants through the ingest action (every 20th over HTTP).

Run with `make bench PYTEST_ARGS="-k fuzz"`; the figures go into docs/benchmarks.md.
"""
from __future__ import annotations

import pytest

from tests.dicom_mutants import mutants
from tests.ingest_fuzz_support import FuzzTally, ingest_directly, ingest_over_http, leftovers

pytestmark = [pytest.mark.bench, pytest.mark.django_db, pytest.mark.timeout(3600),
              pytest.mark.filterwarnings("ignore::UserWarning")]

MUTANTS, SEED, HTTP_EVERY = 10_000, 1018, 20


def test_ten_thousand_mutants_never_break_ingest(api_as, owner, project, temporary_media):
    from boneage.studies.models import IngestRecord

    client, direct, http = api_as(owner), FuzzTally(), FuzzTally()
    for index, mutant in enumerate(mutants(MUTANTS, SEED)):
        if index % HTTP_EVERY == 0:
            ingest_over_http(client, project, mutant.name, mutant.data, http)
        else:
            ingest_directly(project, owner, mutant.name, mutant.data, direct)
    print(f"\nmutants, action: {direct.line()}\nmutants, HTTP: {http.line()}")
    print("refusal reasons:", dict(direct.reasons.most_common()))
    assert direct.problems == [] and http.problems == [], (direct.problems + http.problems)[:20]
    assert IngestRecord.objects.filter(project=project).count() == MUTANTS
    assert leftovers(temporary_media, project) == []
