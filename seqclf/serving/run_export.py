"""`export_run`: a run directory to a TF Serving version directory.

Its own module, beside `seqclf.serving.export`: reading a run needs the task object
(`seqclf.models.TextClassifier`), whose `export` calls `export_saved_model`; in `export.py` the two
would import each other.
"""


def export_run(run_dir, model_base_path, version=None, name=None, validate=True):
    """Export the run saved in `run_dir` (`seqclf train`'s or `TextClassifier.save_run`'s) for
    TF Serving: `TextClassifier.from_run(run_dir).export(...)`; returns the version directory."""
    from seqclf.models.text_classifier import TextClassifier

    return TextClassifier.from_run(run_dir).export(
        model_base_path, version=version, name=name, validate=validate
    )
