"""A training run says truly what happened (issue 32, row 2): a fine-tune that ships the weights it started from is
no change, not a new version to promote; a run the time cap cut says so; the held-out split of a small project
reaches the gate's minimum where a quarter of its labels allow it, and where not, the gate says how many it takes."""
from __future__ import annotations

import pytest
from boneage.modeling.run_outcome import how_it_ended, no_change, too_few_words, validation_ids

# --- the held-out split ----------------------------------------------------------------------------


def ids(n: int, start: int = 1) -> list[str]:
    return [str(i) for i in range(start, start + n)]


def test_the_demos_120_labels_hold_out_the_gates_20_and_keep_the_usual_ten_percent_among_them():
    usual = validation_ids(ids(120))
    widened = validation_ids(ids(120), at_least=20)
    assert len(usual) < 20 and len(widened) == 20 and usual <= widened


def test_a_project_whose_quarter_cannot_reach_the_minimum_keeps_the_usual_split():
    assert validation_ids(ids(60), at_least=20) == validation_ids(ids(60))


def test_a_large_project_keeps_the_usual_ten_percent():
    assert validation_ids(ids(400), at_least=20) == validation_ids(ids(400))


def test_once_widened_more_labels_only_move_held_out_studies_into_training():
    before = validation_ids(ids(120), at_least=20)
    after = validation_ids(ids(150), at_least=20)
    assert len(after) == 20 and after - before <= set(ids(30, start=121))  # newcomers only


# --- the outcome in words --------------------------------------------------------------------------

CUT = {"epochs": 10, "max_seconds": 180, "early_stop_patience": 8}


def test_a_run_the_time_cap_cut_says_so_with_its_epochs():
    assert how_it_ended(CUT, {"epochs": 2, "seconds": 193.4}) == "the time cap (180 s) ended the run after 2 of 10 epochs"


def test_a_run_that_stopped_early_says_so():
    assert how_it_ended(CUT, {"epochs": 9, "seconds": 120.0}) == ("early stopping ended the run after 9 of 10 epochs "
                                                                  "(no better validation MAE for 8 epochs)")


def test_a_default_recipe_run_says_what_its_stages_trained_not_a_cut_of_the_requests_epochs():
    recipe = {"init": "recipe", "epochs": 10, "max_seconds": 150}
    metrics = {"epochs": 0, "seconds": 600.0, "segmenter_stage": {"epochs": 2}, "regressor_stage": {"epochs": 31}}
    assert how_it_ended(recipe, metrics) == ("the default recipe trained the segmenter 2 epochs, then the regressor 31 "
                                             "epochs until its time budget (150 s) ended it")


def test_a_run_that_trained_every_epoch_says_nothing_of_its_end():
    assert how_it_ended(CUT, {"epochs": 10, "seconds": 170.0}) == ""


def test_no_change_names_the_cut_both_figures_and_what_to_do():
    metrics = {"epochs": 2, "seconds": 190.0,
               "final_candidates": {"init": 5.7, "selected_epoch": 12.7, "recalibrated_bn": 13.1, "shipped": "init"}}
    words = no_change("v1", CUT, metrics, 20)
    assert words.startswith("no change, kept v1: the time cap (180 s) ended the run after 2 of 10 epochs; ")
    assert "the 20 held-out studies with an MAE of 12.7 months against 5.7 for v1's own" in words
    assert "no new version was registered" in words and "max_seconds" in words


def test_a_run_with_nothing_new_to_learn_says_so_and_advises_labels_not_more_time():
    metrics = {"epochs": 5, "seconds": 190.0,
               "final_candidates": {"init": 4.9, "selected_epoch": 6.6, "recalibrated_bn": 6.8, "shipped": "init"}}
    words = no_change("v1", CUT, metrics, 20, nothing_new=100)
    assert words.startswith("no change, kept v1: the time cap (180 s) ended the run after 5 of 10 epochs; ")
    assert words.endswith("It trained on the 100 studies v1 had already learned, with no label added or changed "
                          "since, so there was nothing new to learn: label more studies, then train again.")
    assert "max_seconds" not in words


def test_too_few_held_out_studies_say_how_many_labels_the_gate_needs():
    words = too_few_words(6, 60, 20, "v1")
    assert words == ("no promotion: the gate needs 20 held-out studies and this project's 60 labelled studies hold "
                     "out 6; with 80 (a quarter held out) it can decide: label 20 more or lower the gate's minimum on "
                     "the settings page; kept v1")


# --- a real run --------------------------------------------------------------------------------------


@pytest.fixture
def active_v1(tiny_project, owner, add_studies, register_model):
    add_studies(tiny_project, owner, 14)
    return register_model(tiny_project, name="v1")


def run_in_process(project, owner, request: dict):
    from boneage.modeling.models import TrainingRun
    from boneage.modeling.training import check_run_request, do_start_training, run_training

    run = do_start_training(project, actor=owner, config=check_run_request(project, request), enqueue=False)
    run_training(run.pk)
    return TrainingRun.objects.get(pk=run.pk)


@pytest.mark.django_db(transaction=True)
def test_a_fine_tune_that_ships_its_start_is_no_change_and_offers_nothing_to_promote(
        tiny_project, owner, member, active_v1, api_as, temporary_media):
    from boneage.modeling.models import ModelVersion

    # a learning rate of 1.0 wrecks the weights within the time cap: the start scores better and is shipped again
    run = run_in_process(tiny_project, owner, {"init": "active", "epochs": 200, "lr": 1.0, "max_seconds": 10})
    assert run.state == "succeeded" and run.result is None
    outcome = run.progress["outcome"]
    assert outcome.startswith("no change, kept v1: the time cap (10 s) ended the run after ") and " of 200 epochs" in outcome
    assert run.progress["no_change"] is True and run.curve

    listed = api_as(member).get(f"/api/projects/{tiny_project.pk}/models/").json()["results"]
    assert [(v["name"], v["status"]) for v in listed] == [("v1", "active")]
    assert list(ModelVersion.objects.values_list("name", flat=True)) == ["v1"]
    assert not (temporary_media / f"models/{tiny_project.pk}/run-{run.pk}.pt").exists()  # the copy of v1 is gone


@pytest.mark.django_db(transaction=True)
def test_a_fine_tune_of_the_labels_its_start_already_learned_says_it_had_nothing_new_to_learn(
        tiny_project, owner, active_v1, temporary_media):
    from boneage.modeling.models import ModelVersion

    learned = sorted(tiny_project.studies.values_list("pk", flat=True))
    ModelVersion.objects.filter(pk=active_v1.pk).update(training_study_ids=learned)  # v1 trained on every label
    run = run_in_process(tiny_project, owner, {"init": "active", "epochs": 200, "lr": 1.0, "max_seconds": 10})
    outcome = run.progress["outcome"]
    assert outcome.startswith("no change, kept v1: ") and run.result is None
    assert "v1 had already learned, with no label added or changed since, so there was nothing new to learn" in outcome
