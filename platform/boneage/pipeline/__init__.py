"""What happens to a study after ingest, in one place (docs/architecture.md):

    ingest (studies.do_ingest) ─ study_ingested ─▶ derive (studies.post_ingest, cpu)
        ─▶ automask (annotations.automask, cpu) ─▶ predict (modeling.predict_study, gpu)
        ─ study_changed ─▶ review rules (review, on commit)
                        └▶ the core-set next-case order (modeling.rank_coreset, cpu; also after a label)

and after a promotion: model_promoted ─▶ re-predict the project (modeling.repredict, gpu) ─ studies_changed ─▶
review rules. Each stage is one action of the app that owns its rows (studies.derive.do_derive,
annotations.actions.do_automask, modeling.actions.do_predict_study); this package only orders them: its tasks call
a stage and enqueue the next, its receivers (apps.PipelineConfig.ready) enqueue on the core's signals. The states
are boneage.core.pipeline's. Nothing imports this package but Celery and Django's app registry.
"""
