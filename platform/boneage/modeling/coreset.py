"""The core-set next case (`?strategy=coreset`, issue 13): k-center greedy on the active model's embeddings.

Every prediction stores the age head's input features (`Prediction.embedding`, float32). Ranking a project means
running k-center greedy over its unlabelled studies' embeddings, with the labelled studies as the centres, and
storing the greedy order as one ActiveScore per study (`ml.active.coreset_scores`): the next case then serves the top
of that order as it serves any ranked list, so labelers asking at once get a spread-out batch.

The order depends on which studies are labelled, so it is recomputed after a label or a new prediction
(`schedule_ranking` → the `modeling.rank_coreset` cpu task → `actions.do_rank_project`, at most one waiting per
project) and at the end of a project's re-prediction (`do_rescore_project`).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from boneage.annotations.models import AgeLabel
from boneage.core.events import redis_client
from boneage.modeling.models import ActiveScore, ModelVersion, Prediction
from boneage.studies.models import is_male

STRATEGY = "coreset"
PENDING_SECONDS = 300  # a waiting ranking's marker expires even if its task is lost, so ranking never stops for good


def embedding_bytes(vector) -> bytes | None:
    """A prediction's embedding as stored: float32 little-endian (1 KB at the starter's 256 features)."""
    if vector is None:
        return None
    return np.asarray(vector, dtype="<f4").reshape(-1).tobytes()


def embedding_array(blob) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype="<f4")


def rank_version(version: ModelVersion) -> int:
    """Store the core-set scores of the version's unlabelled studies; the number ranked.

    Studies whose prediction has no embedding (made before embeddings were stored) are left out, as centres too."""
    from ml.active import coreset_points, coreset_scores

    rows = list(Prediction.objects.filter(model_version=version, embedding__isnull=False)
                .order_by("study_id").values_list("study_id", "embedding", "study__sex"))
    if not rows:
        return 0
    labelled = set(AgeLabel.objects.filter(study__project_id=version.project_id).values_list("study_id", flat=True))
    points = coreset_points(np.stack([embedding_array(blob) for _, blob, _ in rows]),
                            [is_male(sex) for *_, sex in rows])
    is_labelled = np.array([study_id in labelled for study_id, *_ in rows])
    candidates = [study_id for (study_id, *_), done in zip(rows, is_labelled) if not done]
    scores = coreset_scores(points[~is_labelled], points[is_labelled])
    ActiveScore.objects.bulk_create(
        [ActiveScore(study_id=study_id, model_version=version, strategy=STRATEGY, score=float(score))
         for study_id, score in zip(candidates, scores)],
        batch_size=1000, update_conflicts=True, update_fields=["score"],
        unique_fields=["study", "model_version", "strategy"])  # last_served_at survives a re-ranking
    return len(candidates)


def _pending_key(project_id: int) -> str:
    return f"boneage:coreset-pending:{project_id}"


def schedule_ranking(project_id: int, enqueue: Callable[[int], None]) -> bool:
    """Enqueue a re-ranking unless one is already waiting for this project: a burst of labels or predictions costs
    one ranking, not one each. The task clears the marker before it reads (`take_pending`), so a label that arrives
    while it runs schedules another. False when one was already waiting."""
    if not redis_client().set(_pending_key(project_id), 1, nx=True, ex=PENDING_SECONDS):
        return False
    try:
        enqueue(project_id)
    except Exception:
        redis_client().delete(_pending_key(project_id))
        raise
    return True


def take_pending(project_id: int) -> None:
    redis_client().delete(_pending_key(project_id))


__all__ = ["STRATEGY", "embedding_array", "embedding_bytes", "rank_version", "schedule_ranking",
           "take_pending"]
