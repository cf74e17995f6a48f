"""The ingest fuzz at bench scale: 10,000 seeded mutants through the ingest action (every 20th over HTTP).

Run with `make bench PYTEST_ARGS="-k fuzz"`; the figures go into docs/benchmarks.md.
"""
from __future__ import annotations

import pytest

from tests.ingest_fuzz_support import fuzz_mutants, leftovers

pytestmark = [pytest.mark.bench, pytest.mark.django_db, pytest.mark.timeout(3600),
              pytest.mark.filterwarnings("ignore::UserWarning")]

MUTANTS, SEED, HTTP_EVERY = 10_000, 1018, 20


def test_ten_thousand_mutants_never_break_ingest(api_as, owner, project, temporary_media):
    from boneage.studies.models import IngestRecord

    direct, http = fuzz_mutants(api_as(owner), project, owner, MUTANTS, SEED, HTTP_EVERY)
    print(f"\nmutants, action: {direct.line()}\nmutants, HTTP: {http.line()}")
    print("refusal reasons:", dict(direct.reasons.most_common()))
    assert direct.problems == [] and http.problems == [], (direct.problems + http.problems)[:20]
    assert IngestRecord.objects.filter(project=project).count() == MUTANTS
    assert leftovers(temporary_media, project) == []
