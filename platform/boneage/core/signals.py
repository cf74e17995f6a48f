"""How the apps tell each other about changes (docs/architecture.md): the sender names what happened and does not
know who listens; each receiver is connected in its app's `AppConfig.ready`. No app imports another app's actions
to tell it something.

| signal | sent by, when | kwargs | received by |
|---|---|---|---|
| `study_ingested` | studies.do_ingest, inside the ingest transaction, after the study is stored | study, actor, bone_age_months | annotations (the upload's bone age as an import label), pipeline (derive on commit) |
| `label_saved` | annotations, inside the transaction that created the AgeLabel | label | modeling (auto-retrain after N expert labels, on commit) |
| `study_changed` | annotations (mask, label), modeling (prediction), on commit | study_id, reason | review (the disagreement rules), pipeline (label, prediction: the core-set ranking on the cpu queue) |
| `studies_changed` | modeling (a batch re-prediction), on commit | study_ids, reason | review (its rules on the cpu queue) |
| `model_promoted` | modeling.do_promote, inside its transaction | version_id | pipeline (re-predict the project on commit) |
| `reprediction_requested` | modeling.do_rerun_reprediction (a re-prediction whose worker died), inside its transaction | version_id | pipeline (re-predict the project on commit) |
| `review_settings_changed` | review.do_update_settings, inside its transaction | project_id | review.hooks (the project's rules again, in a task on commit) |
| `study_deleting` | studies.do_delete_study, inside its transaction, before the study's rows go | study | annotations (mask files), modeling (prediction files), dicomweb (SEG/SR files): each returns the storage names of its files of the study, deleted once the deletion commits |
| `study_reframed` | annotations.frame.reframe, inside its transaction, once a study's film is read in a new frame (turned, inverted or as stored) | study_id, read_again | modeling (drops the readings made in the old frame and their files), pipeline (predicts the study on commit when read_again) |
| `training_queued` | modeling.do_start_training, inside its transaction, for a run a worker should pick up | run_id | pipeline (the modeling.train task on commit) |
"""
from __future__ import annotations

from django.dispatch import Signal

study_ingested = Signal()
label_saved = Signal()
study_changed = Signal()
studies_changed = Signal()
model_promoted = Signal()
reprediction_requested = Signal()
training_queued = Signal()
review_settings_changed = Signal()
study_deleting = Signal()
study_reframed = Signal()
