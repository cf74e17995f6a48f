"""Why a study stopped in the pipeline, in words for the worklist and the study page (issue 32, row 12).

A stage that fails records its reason on the study (`Study.automask_error`, `automask_state` failed: derive and the
automask in `studies.derive.record_failure` and `annotations.do_automask`, a batch re-prediction that could not read
the film in `modeling`) and sends `mask.failed`; the pages read it back through `failure_of`.
"""
from __future__ import annotations

from dataclasses import dataclass

from boneage.core.pipeline import AutomaskState

DERIVE, PREDICT = "could not derive images: ", "could not predict: "


@dataclass(frozen=True)
class Failure:
    stage: str      # derive | automask | predict
    summary: str    # one sentence for people
    detail: str     # what the code recorded, for whoever fixes it

    def as_json(self) -> dict[str, str]:
        return {"stage": self.stage, "summary": self.summary, "detail": self.detail}


def failure_of(state: str, recorded: str) -> Failure | None:
    """The study's failure from its automask state and recorded error; None while nothing failed."""
    if state != AutomaskState.FAILED:
        return None
    recorded = recorded or ""
    if recorded.startswith(DERIVE):
        reason = _after_code(recorded[len(DERIVE):])
        return Failure("derive", "The stored film could not be read, so it has no images, mask or prediction"
                       f"{': ' + reason if reason else '.'}", recorded)
    if recorded.startswith(PREDICT):
        return Failure("predict", "The model could not read this film, so it has no prediction. Upload it again if "
                       "the file may be damaged.", recorded)
    return Failure("automask", "The automatic hand mask could not be made: draw the mask by hand in the mask editor.",
                   recorded)


def _after_code(text: str) -> str:
    """An ingest refusal recorded as 'code: sentence' keeps its sentence; an exception's text ('OSError: …') is no
    sentence for people and is left to the detail."""
    code, _, rest = text.partition(": ")
    if code.islower() and "_" in code and rest:  # an IngestError code (image_undecodable: …)
        return rest.strip()
    return ""
