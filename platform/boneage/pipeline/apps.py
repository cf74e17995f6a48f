from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "boneage.pipeline"
    label = "pipeline"

    def ready(self) -> None:
        from boneage.core import signals
        from boneage.pipeline import receivers

        signals.study_ingested.connect(receivers.derive_on_commit, dispatch_uid="pipeline-derive")
        signals.model_promoted.connect(receivers.repredict_on_commit, dispatch_uid="pipeline-repredict")
        signals.reprediction_requested.connect(receivers.repredict_on_commit, dispatch_uid="pipeline-repredict-again")
        signals.training_queued.connect(receivers.train_on_commit, dispatch_uid="pipeline-train")
        signals.study_changed.connect(receivers.rank_after_change, dispatch_uid="pipeline-rank-coreset")
        signals.study_reframed.connect(receivers.predict_after_reframe, dispatch_uid="pipeline-predict-reframed")
