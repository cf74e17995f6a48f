"""Blind review outside the queue: a study's labels, its history and its page never show a labeler anyone
else's age, nor the model's; reviewers see them as the queue rule says; outsiders learn nothing."""
from __future__ import annotations

import pytest

from tests.boneage.review.helpers import open_items

pytestmark = pytest.mark.django_db

MINE, THEIRS, MODEL = 100.5, 140.5, 170.5  # not integers, so no row id can pass for one of them


def numbers(value):
    """Every number anywhere in a JSON body."""
    if isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def months_by_author(labels):
    return {row["author"]: row["months"] for row in labels}


@pytest.fixture
def blind(project):
    project.settings = {"review": {"blind": True}}
    project.save()
    return project


@pytest.fixture
def two_readings(blind, make_study, label, member, second_labeler):
    """A study that max_member (a labeler) read as 100.5 months and lena_labeler as 140.5: a label-vs-label item."""
    study = make_study()
    label(study, MINE, member)
    label(study, THEIRS, second_labeler)
    assert [item.reason for item in open_items(study)] == ["label_vs_label"]
    return study


@pytest.fixture
def judged_by_the_model(two_readings, model_version, predict):
    """The same study, with an out-of-fold model reading of 170.5 months: a model-vs-label item too."""
    predict(two_readings, model_version(), MODEL, 5)
    assert {item.reason for item in open_items(two_readings)} == {"label_vs_label", "model_vs_label"}
    return two_readings


def test_a_labeler_sees_their_own_label_but_not_another_labelers(api_as, member, two_readings):
    labels = api_as(member).get(f"/api/studies/{two_readings.pk}/labels/").json()
    assert months_by_author(labels) == {"max_member": MINE, "lena_labeler": None}
    assert {row["author"]: row["months_hidden"] for row in labels} == {"max_member": False, "lena_labeler": True}
    assert THEIRS not in numbers(labels)


def test_the_label_shown_with_the_study_is_hidden_from_a_labeler_when_it_is_someone_elses(api_as, member, second_labeler,
                                                                                        two_readings):
    mine = api_as(member).get(f"/api/studies/{two_readings.pk}/").json()["label"]
    assert mine["months"] is None and mine["months_hidden"] is True
    listed = api_as(member).get(f"/api/projects/{two_readings.project_id}/studies/").json()["results"]
    assert THEIRS not in numbers(listed)
    theirs = api_as(second_labeler).get(f"/api/studies/{two_readings.pk}/").json()["label"]
    assert theirs["months"] == THEIRS and theirs["months_hidden"] is False


def test_a_labelers_study_history_hides_other_labelers_and_the_models_values(api_as, member, judged_by_the_model):
    history = api_as(member).get(f"/api/studies/{judged_by_the_model.pk}/history/").json()
    assert THEIRS not in numbers(history) and MODEL not in numbers(history)
    saved = [event for event in history if event["verb"] == "label.saved"]
    assert [(event["actor"], event["after"]["months"]) for event in saved] == [("max_member", MINE),
                                                                               ("lena_labeler", None)]
    assert saved[1]["values_hidden"] is True
    queued = [event for event in history if event["verb"] == "review.queued"]
    assert len(queued) == 2 and all(event["after"]["magnitude"] is None for event in queued)
    assert {event["after"]["reason"] for event in queued} == {"label_vs_label", "model_vs_label"}  # the what stays


def test_the_project_history_hides_the_same_values_from_a_labeler(api_as, member, judged_by_the_model):
    events = api_as(member).get(f"/api/projects/{judged_by_the_model.project_id}/history/").json()["results"]
    assert THEIRS not in numbers(events) and MODEL not in numbers(events)
    assert any(event["verb"] == "review.queued" for event in events)


def test_the_worklist_hides_another_labelers_label_and_refuses_to_sort_by_it(api_as, member, second_labeler,
                                                                           two_readings):
    client = api_as(member)
    [row] = client.get(f"/api/projects/{two_readings.project_id}/worklist/").json()["results"]
    assert (row["label_months"], row["label_hidden"], row["state"]) == (None, True, "in_review")
    assert THEIRS not in numbers(client.get(f"/api/worklist-rows/{two_readings.pk}/").json())
    for ordering in ("label", "-label", "-error"):
        refused = client.get(f"/api/projects/{two_readings.project_id}/worklist/?ordering={ordering}")
        assert refused.status_code == 400 and refused.json()["error"] == "hidden_by_blind_review", ordering
    page = client.get(f"/projects/{two_readings.project_id}/").content.decode()
    assert 'value="-label"' not in page and 'data-sort="label"' not in page
    [theirs] = api_as(second_labeler).get(f"/api/projects/{two_readings.project_id}/worklist/").json()["results"]
    assert (theirs["label_months"], theirs["label_hidden"]) == (THEIRS, False)


def test_a_trainer_reads_no_ages_and_sees_none_either(api_as, trainer, two_readings):
    labels = api_as(trainer).get(f"/api/studies/{two_readings.pk}/labels/").json()
    assert months_by_author(labels) == {"max_member": None, "lena_labeler": None}


def test_the_study_page_itself_carries_no_age_value(api_as, member, judged_by_the_model):
    html = api_as(member).get(f"/studies/{judged_by_the_model.pk}/").content.decode()
    assert str(THEIRS) not in html and str(MODEL) not in html and str(MINE) not in html


def test_a_reviewer_sees_the_values_only_after_entering_their_own_reading(api_as, reviewer, two_readings):
    client = api_as(reviewer)
    before = client.get(f"/api/studies/{two_readings.pk}/labels/").json()
    assert months_by_author(before) == {"max_member": None, "lena_labeler": None}
    assert THEIRS not in numbers(client.get(f"/api/studies/{two_readings.pk}/history/").json())
    [item] = open_items(two_readings)
    assert client.post(f"/api/review-items/{item.pk}/blind-read/", {"months": 120}, format="json").status_code == 200
    after = client.get(f"/api/studies/{two_readings.pk}/labels/").json()
    assert months_by_author(after) == {"max_member": MINE, "lena_labeler": THEIRS}
    assert THEIRS in numbers(client.get(f"/api/studies/{two_readings.pk}/history/").json())


def test_a_reviewer_must_have_read_every_open_item_of_the_study_first(api_as, reviewer, judged_by_the_model):
    client = api_as(reviewer)
    first, second = open_items(judged_by_the_model)
    client.post(f"/api/review-items/{first.pk}/blind-read/", {"months": 120}, format="json")
    assert THEIRS not in numbers(client.get(f"/api/studies/{judged_by_the_model.pk}/labels/").json())
    client.post(f"/api/review-items/{second.pk}/blind-read/", {"months": 120}, format="json")
    assert THEIRS in numbers(client.get(f"/api/studies/{judged_by_the_model.pk}/labels/").json())


def test_once_the_item_is_decided_the_owner_and_reviewers_see_every_value_but_labelers_still_do_not(
        api_as, owner, reviewer, member, two_readings, committed):
    [item] = open_items(two_readings)
    client = api_as(reviewer)
    client.post(f"/api/review-items/{item.pk}/blind-read/", {"months": 130}, format="json")
    with committed():
        decided = client.post(f"/api/review-items/{item.pk}/resolve/", {"decision": "new_value", "months": 130.5},
                              format="json")
    assert decided.status_code == 200
    for user in (owner, reviewer):
        labels = api_as(user).get(f"/api/studies/{two_readings.pk}/labels/").json()
        assert months_by_author(labels) == {"rita_reviewer": 130.5, "max_member": MINE, "lena_labeler": THEIRS}
        history = api_as(user).get(f"/api/studies/{two_readings.pk}/history/").json()
        resolved = next(event for event in history if event["verb"] == "review.resolved")
        assert resolved["after"]["months"] == 130.5 and resolved["values_hidden"] is False
    labels = api_as(member).get(f"/api/studies/{two_readings.pk}/labels/").json()
    assert months_by_author(labels) == {"rita_reviewer": None, "max_member": MINE, "lena_labeler": None}
    history = api_as(member).get(f"/api/studies/{two_readings.pk}/history/").json()
    assert {130.5, THEIRS} & set(numbers(history)) == set()


def test_without_blind_review_a_labeler_sees_every_value(api_as, member, two_readings, project):
    project.settings = {"review": {"blind": False}}
    project.save()
    labels = api_as(member).get(f"/api/studies/{two_readings.pk}/labels/").json()
    assert months_by_author(labels) == {"max_member": MINE, "lena_labeler": THEIRS}
    history = api_as(member).get(f"/api/studies/{two_readings.pk}/history/").json()
    assert THEIRS in numbers(history) and not any(event["values_hidden"] for event in history)


def test_an_outsider_gets_404_from_the_labels_the_history_and_the_study(api_as, outsider, two_readings):
    client = api_as(outsider)
    for url in (f"/api/studies/{two_readings.pk}/labels/", f"/api/studies/{two_readings.pk}/history/",
                f"/api/studies/{two_readings.pk}/", f"/studies/{two_readings.pk}/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert str(THEIRS) not in response.content.decode()


def test_the_models_reading_is_hidden_until_the_reviewer_entered_their_own(api_as, reviewer, member,
                                                                           judged_by_the_model):
    url = f"/api/studies/{judged_by_the_model.pk}/predictions/latest/"
    for user in (member, reviewer):
        body = api_as(user).get(url).json()
        assert body["age_months"] is None and body["std_months"] is None and body["values_hidden"] is True
        assert MODEL not in numbers(body) and "attention" in body  # the maps stay: they carry no age
    client = api_as(reviewer)
    for item in open_items(judged_by_the_model):
        client.post(f"/api/review-items/{item.pk}/blind-read/", {"months": 120}, format="json")
    body = client.get(url).json()
    assert body["age_months"] == MODEL and body["values_hidden"] is False
    assert api_as(member).get(url).json()["age_months"] is None


def test_the_worklist_hides_the_models_age_on_a_disputed_study_until_the_reading(api_as, reviewer, member,
                                                                                judged_by_the_model):
    url = f"/api/projects/{judged_by_the_model.project_id}/worklist/"
    for user in (member, reviewer):
        [row] = [r for r in api_as(user).get(url).json()["results"] if r["id"] == judged_by_the_model.pk]
        assert row["prediction"]["age_months"] is None and row["prediction"]["values_hidden"] is True
        assert MODEL not in numbers(row)
    client = api_as(reviewer)
    for item in open_items(judged_by_the_model):
        client.post(f"/api/review-items/{item.pk}/blind-read/", {"months": 120}, format="json")
    [row] = [r for r in client.get(url).json()["results"] if r["id"] == judged_by_the_model.pk]
    assert row["prediction"]["age_months"] == MODEL and row["prediction"]["values_hidden"] is False


def test_sorting_the_worklist_by_the_model_puts_a_hidden_reading_where_a_missing_one_goes(
        api_as, reviewer, member, make_study, predict, judged_by_the_model):
    """170.5 lies between the two undisputed readings: if the hidden value sorted as itself, its row would sit
    between them and give the model's reading away."""
    version = judged_by_the_model.predictions.get().model_version
    low, high = make_study(), make_study()
    predict(low, version, 10.5, 3)
    predict(high, version, 200.5, 3)
    url = f"/api/projects/{judged_by_the_model.project_id}/worklist/?ordering="

    def order(user, ordering):
        return [row["id"] for row in api_as(user).get(url + ordering).json()["results"]]

    hidden_last = {"-prediction": [high.pk, low.pk, judged_by_the_model.pk],
                   "prediction": [low.pk, high.pk, judged_by_the_model.pk]}
    for user in (member, reviewer):
        for ordering, expected in hidden_last.items():
            assert order(user, ordering) == expected, (user.username, ordering)
    for item in open_items(judged_by_the_model):
        api_as(reviewer).post(f"/api/review-items/{item.pk}/blind-read/", {"months": 120}, format="json")
    assert order(reviewer, "-prediction") == [high.pk, judged_by_the_model.pk, low.pk]
    assert order(member, "-prediction") == [high.pk, low.pk, judged_by_the_model.pk]
