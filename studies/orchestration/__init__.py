"""Running a study: a spec becomes an Optuna search inside Ray Tune, every trial tracked in MLflow.

- ``runner``: ``run_study`` / ``resume_study``: Ray, the Tune experiment, Optuna and MLflow wired
  together, and the results table written when a study stops;
- ``trainable``: one Tune trial is one ``disent_core.train.train`` call, evaluated and reported;
- ``search``: ``StudySearch``, a Tune searcher over Optuna's ask/tell that groups seeds;
- ``tracking``: ``StudyTracker``, a Tune callback that mirrors trials into MLflow;
- ``progress``: the live status lines.
"""
