"""Two reviewers press "claim" (or "decide") at the same moment: exactly one wins, the other gets 409.

Real concurrency: two threads, two database connections, committed rows (transaction=True); the
item row is locked with SELECT … FOR UPDATE inside each action.
"""
from __future__ import annotations

import threading

import pytest
from boneage.annotations.models import AgeLabel
from boneage.review.actions import ReviewError, check_decision, do_claim, do_resolve
from boneage.review.models import ReviewItem
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def race(functions):
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def run(index, function):
        try:
            barrier.wait(timeout=10)
            results[index] = function()
        except Exception as exc:  # noqa: BLE001 — the outcome under test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.fixture
def item(make_study, model_version):
    from boneage.modeling.models import Prediction
    from boneage.review.hooks import study_changed

    study = make_study(100)
    Prediction.objects.create(study=study, model_version=model_version(), age_months=160, std_months=5, out_of_fold=True)
    study_changed(study.pk, "prediction")
    return ReviewItem.objects.get(study=study)


@pytest.mark.parametrize("attempt", range(3))
def test_two_reviewers_claiming_at_once_one_wins_and_one_gets_409(item, reviewer, second_reviewer, attempt):
    results = race([lambda: do_claim(item.pk, reviewer), lambda: do_claim(item.pk, second_reviewer)])
    winners = [r for r in results if isinstance(r, ReviewItem)]
    losers = [r for r in results if isinstance(r, ReviewError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0].status == 409 and losers[0].code == "claimed_by_other"
    item.refresh_from_db()
    assert item.claimed_by == winners[0].claimed_by


def test_two_reviewers_deciding_at_once_write_one_gold_label(item, reviewer, second_reviewer):
    accept_model = check_decision(item, {"decision": "accept_model"}, None)
    new_value = check_decision(item, {"decision": "new_value", "months": 120}, None)
    results = race([lambda: do_resolve(item.pk, reviewer, accept_model),
                    lambda: do_resolve(item.pk, second_reviewer, new_value)])
    assert sum(isinstance(r, ReviewItem) for r in results) == 1, results
    [error] = [r for r in results if isinstance(r, ReviewError)]
    assert error.status == 409
    assert AgeLabel.objects.filter(study=item.study, source="review").count() == 1
