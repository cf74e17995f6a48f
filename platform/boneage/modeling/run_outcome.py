"""What a finished training run did, in words a trainer reads on the models page (issue 32, row 2), and the held-out
split the gate decides on.

- How the run ended: all its epochs, or cut short by the time cap or by early stopping (`how_it_ended`).
- A fine-tune whose trained weights scored worse on the held-out studies than the model it started from ships that
  model's weights again (ml.train's final candidates, `shipped: "init"`): the platform records it as no change and
  registers no version to promote (`kept_its_start`, `no_change`).
- The held-out split is 10 % of the labelled studies, widened for a small project to the gate's minimum where a
  quarter of its labels allow it (`validation_ids`), so the demo's default gate (20) can decide on the demo's 120
  labels; when even a quarter is too few, the gate's refusal says how many labels it takes (`too_few_words`).
"""
from __future__ import annotations

import math
from typing import Any

HELD_OUT_SHARE = 0.1       # the design's 90/10 split
MOST_HELD_OUT_SHARE = 0.25  # widened for the gate at most to a quarter: the rest still has to train the model


def validation_ids(ids: list[str], at_least: int = 0) -> set[str]:
    """The held-out ids: those whose stable hash bucket (ml.data.split_ids) is in the lowest 10 %; when that is fewer
    than `at_least` (the gate's minimum) and a quarter of `ids` reaches it, the `at_least` lowest buckets instead.
    Every id's bucket is its own: once widened, more labels only move ids out of the split, into training. A widening
    itself (a project reaching 4 × the minimum, or a raised minimum) moves ids in that earlier versions trained on; the
    gate leaves those out of its comparison (training._register)."""
    from ml.data import split_ids

    held_out = split_ids(ids, HELD_OUT_SHARE)
    if len(held_out) >= at_least or at_least > math.floor(len(ids) * MOST_HELD_OUT_SHARE):
        return held_out
    low, high = HELD_OUT_SHARE, 1.0  # the smallest share whose bucket threshold holds out `at_least` ids
    for _ in range(40):
        middle = (low + high) / 2
        if len(split_ids(ids, middle)) >= at_least:
            high = middle
        else:
            low = middle
    return split_ids(ids, high)


def labels_for(held_out: int) -> int:
    """How many labelled studies hold out `held_out` for the gate (the widened split's quarter)."""
    return math.ceil(held_out / MOST_HELD_OUT_SHARE)


def too_few_words(n_held_out: int, labelled: int, minimum: int, kept: str, *, left_out: int = 0) -> str:
    """The gate's refusal on too few held-out studies, with what would let it decide."""
    if left_out:  # the split reaches the minimum, but the active model trained on some of it (a widened split)
        return (f"no promotion: the gate needs {minimum} held-out studies that neither model trained on and has "
                f"{n_held_out}: {kept} was trained on a narrower split that left {left_out} of this run's held-out "
                f"studies in its training set; a trainer may still promote by hand; kept {kept}")
    more = labels_for(minimum) - labelled
    return (f"no promotion: the gate needs {minimum} held-out studies and this project's {labelled} labelled studies "
            f"hold out {n_held_out}; with {labels_for(minimum)} (a quarter held out) it can decide: label {more} more "
            f"or lower the gate's minimum on the settings page; kept {kept}")


def how_it_ended(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """'' when the run trained every epoch it planned; else what cut it short, e.g. 'the time cap (180 s) ended the run
    after 2 of 10 epochs'. A default-recipe run says what its stages trained: its time budget, not an epoch count,
    ends it by design (its joint epochs are 0 and the request's `epochs` is not its)."""
    regressor = metrics.get("regressor_stage")
    if config.get("init") == "recipe" and isinstance(regressor, dict):
        segmenter = (metrics.get("segmenter_stage") or {}).get("epochs", "?")
        budget = f" ({float(config['max_seconds']):g} s)" if config.get("max_seconds") else ""
        return (f"the default recipe trained the segmenter {segmenter} epochs, then the regressor "
                f"{regressor.get('epochs', '?')} epochs until its time budget{budget} ended it")
    ran, planned = _whole(metrics.get("epochs")), _whole(config.get("epochs"))
    if ran is None or planned is None or ran >= planned:
        return ""
    cap, seconds = config.get("max_seconds"), metrics.get("seconds")
    if cap and seconds is not None and float(seconds) >= float(cap):
        return f"the time cap ({float(cap):g} s) ended the run after {ran} of {planned} epochs"
    patience = config.get("early_stop_patience")
    why = f" (no better validation MAE for {patience} epochs)" if patience else ""
    return f"early stopping ended the run after {ran} of {planned} epochs{why}"


def kept_its_start(metrics: dict[str, Any]) -> bool:
    """ml.train shipped the weights the run started from: its trained weights scored no better on the held-out
    studies (ml.train._final_candidate)."""
    return (metrics.get("final_candidates") or {}).get("shipped") == "init"


def no_change(start_name: str, config: dict[str, Any], metrics: dict[str, Any], n_held_out: int, *,
              nothing_new: int | None = None) -> str:
    """The outcome of a run that shipped its start's weights: why, with both figures from the same measure.
    nothing_new: the run trained on this many studies, all of them already learned by its start with the same labels
    (none labelled since it was trained): then more time would not help, and the advice is to label."""
    candidates = metrics.get("final_candidates") or {}
    start = candidates.get("init")
    trained = [v for k, v in candidates.items() if k not in ("init", "shipped") and isinstance(v, (int, float))]
    ending = how_it_ended(config, metrics)
    comparison = (f"its trained weights read the {n_held_out} held-out studies with an MAE of {min(trained):.1f} months "
                  f"against {start:.1f} for {start_name}'s own" if trained and isinstance(start, (int, float))
                  else f"its trained weights read the {n_held_out} held-out studies no better than {start_name}'s")
    if nothing_new:  # the demo (docs/benchmarks.md): 5 epochs inside the cap did not help either
        advice = (f" It trained on the {nothing_new} studies {start_name} had already learned, with no label added or "
                  f"changed since, so there was nothing new to learn: label more studies, then train again.")
    elif ending.startswith("the time cap"):
        advice = " Give runs more time (max_seconds in the training defaults on the settings page) or fewer epochs."
    else:
        advice = ""
    return (f"no change, kept {start_name}: {ending + '; ' if ending else ''}{comparison}, so the run shipped "
            f"{start_name}'s weights and no new version was registered.{advice}")


def _whole(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
