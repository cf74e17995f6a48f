"""How many of a project's films are outside its active model's experience (ml.ood, issue 29): the banner the
worklist and the models page show when most are, with the count and what to do."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from boneage.modeling.actions import active_version
from boneage.modeling.models import Prediction


@dataclass(frozen=True)
class OutsideSummary:
    model_name: str
    predicted: int   # the project's studies the active model has read
    outside: int     # of those, outside its experience

    @property
    def most(self) -> bool:
        """More than half of the predicted films are outside: the project's films are not what the model knows."""
        return self.predicted > 0 and 2 * self.outside > self.predicted

    @property
    def message(self) -> str:
        return (f"{self.outside} of {self.predicted} predicted films are outside the experience of the active model "
                f"({self.model_name}): its readings of them are guesses, shown with the whole age range. To fix it, "
                f"label films of this project (Next case picks the most useful) and train a model on them (Models page).")

    def as_json(self) -> dict:
        return {"model": self.model_name, "predicted": self.predicted, "outside": self.outside, "most": self.most,
                "message": self.message if self.most else ""}


def outside_summary(project_id: int) -> OutsideSummary | None:
    """The active model's count over the project's predictions (one aggregate on its rows); None without a model."""
    version = active_version(project_id)
    if version is None:
        return None
    counts = Prediction.objects.filter(model_version=version).aggregate(
        predicted=Count("id"), outside=Count("id", filter=Q(outside=True)))
    return OutsideSummary(version.name, counts["predicted"], counts["outside"])
