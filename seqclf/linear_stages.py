"""The linear-path stages of `seqclf.run.train`: the linear n-gram path fitted on the training
split (`linear_stage`), then blended with the trained recurrent model on the validation split
(`blend_stage`). The fitting itself is `seqclf.linear_path`'s, which `TextClassifier.fit` uses
too.
"""

import time

import numpy as np

from seqclf.linear_path import (
    blend_summary,
    fit_ngram_linear,
    held_out_blend,
    token_id_matrix,
)
from seqclf.models import TextClassifier, compile_classifier
from seqclf.models.logit_blend import blend_backbones
from seqclf.training import say


def linear_stage(built, train_data):
    """`(layer, record)`: the run's linear path fitted on its training split, or None where the
    settings ask for none (`ngram_buckets=0`) or the data is streamed (the fit is in memory)."""
    config = built.config
    if not config.ngram_buckets:
        return None
    if config.stream:
        say(config, "linear n-gram path: off for streamed data (it is fitted in memory)")
        return None
    preprocessor = built.classifier.preprocessor
    layer, record = fit_ngram_linear(
        token_id_matrix(preprocessor, train_data.texts), train_data.labels,
        num_classes=train_data.num_classes, vocab_size=preprocessor.vocabulary_size,
        buckets=config.ngram_buckets, seed=config.seed, groups=train_data.groups,
        class_weights=built.class_weights,
    )
    kind = "TF-IDF" if record["kind"] == "tfidf" else "naive-Bayes-scaled (NBSVM)"
    say(config, f"linear path: {kind} unigrams + bigrams, logistic regression C={record['C']:g} "
                f"(the best of {len(record['cv_accuracy']) or 1} by cross-validation on the "
                f"training split), {record['seconds']:.1f} s")
    return layer, record


def blend_stage(built, linear, val_data, pool=None):
    """Blends the fitted linear path with the trained recurrent backbone (`LogitBlend`, weights
    fitted on the validation data) and makes that the run's classifier; returns the record.

    Where the validation data was held out of the training file (`pool`: all of it), the linear
    path is then fitted again, same features and C, on the whole file: the blend weights are
    kept, the recorded validation figures are those measured before (held out).
    """
    start = time.perf_counter()
    layer, record = linear
    config, classifier = built.config, built.classifier
    preprocessor = classifier.preprocessor
    probabilities = classifier.predict(val_data.texts, batch_size=config.batch_size)
    y = np.asarray(val_data.labels)
    figures, blended = held_out_blend(
        layer, record["kind"], preprocessor, val_data.texts, y, probabilities,
        weights=None if built.class_weights is None else built.class_weights[y])
    linear_weight, recurrent_weight = figures["linear_weight"], figures["recurrent_weight"]

    if pool is not None:
        layer, _ = fit_ngram_linear(
            token_id_matrix(preprocessor, pool.texts), pool.labels,
            num_classes=pool.num_classes, vocab_size=preprocessor.vocabulary_size,
            buckets=config.ngram_buckets, seed=config.seed,
            candidate=(record["kind"], record["C"]), class_weights=built.class_weights,
        )
    backbone = blend_backbones(layer, classifier.backbone, linear_weight, recurrent_weight)
    compile_classifier(backbone, steps_per_execution=1)  # for evaluate; trains no further
    built.classifier = TextClassifier(backbone, preprocessor, classifier.label_names,
                                      settings=classifier.settings)
    blend = {
        **figures, "linear_path": record, "linear_refit_on_validation": pool is not None,
        "seconds": round(record["seconds"] + time.perf_counter() - start, 2),
        # For the per-class report (`write_results_stage` takes it out of the record): the
        # linear path may have been refitted on the whole file, so its predictions of the
        # validation split from now on would not be held out.
        "val_predicted": np.argmax(blended, axis=1),
    }
    say(config, blend_summary(blend))
    return blend
