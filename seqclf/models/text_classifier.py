"""`TextClassifier`: one `keras.Model` task on raw strings — preprocessor, backbone, label names.

The split follows keras-hub's tasks: the *backbone* (`build_classifier`: token ids in,
probabilities out) is what trains; the *preprocessor* (`TextPreprocessor`: vocabulary and
`max_length`) turns texts into ids; the task holds both, with the label names. `fit`,
`evaluate` and `predict` take texts (lists, NumPy arrays, pandas Series and DataFrames,
`tf.data` datasets of `(text, label)` or `(text, label, weight)`; see
`seqclf.models.text_inputs`) with their labels and weights and run them through
`seqclf.data.make_dataset`, the bucketed, cached, prefetched pipeline of `seqclf train`; data
already in ids passes through to Keras unchanged.
"""

import keras
import numpy as np

# Registers LazyAdam, the default optimizer, which a `.keras` file's compile config names.
import seqclf.lazy_adam  # noqa: F401
from seqclf._startup import spend_once_only_notices
from seqclf.data.pipeline import make_dataset, string_values
from seqclf.errors import SeqclfError
from seqclf.models.classifier import build_classifier, compile_options
from seqclf.models.logit_blend import find_logit_blend, set_blend_weights, with_linear_path
from seqclf.models.ngram_linear import NgramLinear
from seqclf.models.text_inputs import (
    class_weights,
    is_text,
    read_inputs,
    validation_split_at,
)
from seqclf.models.text_preprocessor import TextPreprocessor

# `TrainConfig` fields that are arguments of `build_classifier` under the same name.
BACKBONE_FIELDS = ("embedding_dim", "units", "layers", "bidirectional", "dropout",
                   "embedding_dropout", "forget_bias", "seed")


def backbone_from_settings(settings, *, vocab_size, num_classes, embeddings=None):
    """`build_classifier` as `seqclf train` calls it for resolved settings (`TrainConfig` fields).

    The options a cell does not take are left at their defaults (`pooling` for `bow`,
    `lstm_init` for other cells), chrono initialization targets `max_length`, and
    `ngram_buckets=0` means no n-gram path.
    """
    cell = settings["model"]
    return build_classifier(
        cell, vocab_size=vocab_size, num_classes=num_classes,
        **{k: settings[k] for k in BACKBONE_FIELDS if k in settings},
        pooling=(settings.get("pooling") or "last") if cell != "bow" else "last",
        lstm_init=settings.get("lstm_init", "default") if cell == "lstm" else "default",
        chrono_max_timescale=settings.get("max_length"), embeddings=embeddings,
        ngram_buckets=settings.get("ngram_buckets") or None,
    )


@keras.saving.register_keras_serializable(package="seqclf")
class TextClassifier(keras.Model):
    """A text classifier on raw strings: a `TextPreprocessor`, a backbone and the label names.

    Build it from training texts (`TextClassifier.from_texts`: the preprocessor adapts on them and
    the automatic recipe, `seqclf.recipe`, fills in the sizes not given), from its parts
    (`TextClassifier(backbone, preprocessor, label_names)`), or from a run directory
    (`TextClassifier.from_run`). Called on token ids it returns the backbone's probabilities;
    `fit`, `evaluate`, `predict`, `predict_labels` and `explain` take texts.

    Args:
        backbone: a `keras.Model` from token ids `[batch, time]` to probabilities
            `[batch, len(label_names)]`, as `seqclf.models.build_classifier` builds.
        preprocessor: the `TextPreprocessor` that makes those ids.
        label_names: the class names, in the backbone's output order.
        settings: what the classifier was built with (`TrainConfig` fields), written into a run
            directory's `config.json` by `save_run`.
    """

    def __init__(self, backbone, preprocessor, label_names, settings=None, **kwargs):
        label_names = list(label_names)
        if (not label_names or not all(isinstance(n, str) for n in label_names)
                or len(set(label_names)) != len(label_names)):
            raise SeqclfError(
                f"`label_names` must be distinct strings. Received: label_names={label_names!r}"
            )
        if backbone.output_shape[-1] != len(label_names):
            raise SeqclfError(
                "The backbone's output size must equal the number of labels. Received: "
                f"backbone.output_shape={backbone.output_shape}, "
                f"len(label_names)={len(label_names)}"
            )
        if not isinstance(preprocessor, TextPreprocessor):
            raise SeqclfError(
                "`preprocessor` must be a seqclf.models.TextPreprocessor. "
                f"Received: preprocessor={type(preprocessor).__name__}"
            )
        # The backbone's own graph, not a call of it as one layer: the task's layers are the
        # backbone's (embedding, recurrent layers, head), which per-layer tools such as
        # `GradientStats` and `timestep_gradient_norms` read.
        super().__init__(backbone.input, backbone.output, **kwargs)
        # TensorFlow's devices exist by now (the backbone holds variables), so no configuration
        # can follow: spend its once-only error notices before they could print mid-training.
        spend_once_only_notices()
        self.backbone = backbone
        self.preprocessor = preprocessor
        self._label_names = tuple(label_names)
        self._settings = dict(settings or {})

    @property
    def label_names(self):
        return list(self._label_names)

    @property
    def settings(self):
        return dict(self._settings)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_texts(cls, texts, labels, *, label_names=None, model="lstm", recipe="auto",
                   batch_size=32, embeddings=None, **settings):
        """A classifier for these training texts, its preprocessor adapted on them.

        `labels` are class ids (into `label_names`, default "0", "1", ...) or label names
        (`label_names` default: their sorted distinct values). The recipe (`"auto"` or
        `"fixed"`, see `seqclf.recipe`) fills each of its settings not given here
        (`max_tokens`, `max_length`, `pooling`, `dropout`, `ngram_buckets`, ...);
        `settings` also takes the `build_classifier` options (`units`, `embedding_dim`, `layers`,
        `bidirectional`, `lstm_init`, `forget_bias`, `seed`). `embeddings` is a
        `[vocab_size, embedding_dim]` array or a function of the vocabulary returning one.
        The recipe's choices and reasons are in `settings["recipe_record"]`; its `epochs`
        are a suggestion for `fit`. It trains one model: the recipe's ensemble of `members`
        (`seqclf.recipe`) is `seqclf.run.train`'s.
        """
        from seqclf.recipe import RECIPE_FIELDS

        texts = string_values(texts)
        labels, label_names = _label_ids(labels, label_names)
        fields = {k: settings.pop(k, None) for k in RECIPE_FIELDS}
        defaults = {"embedding_dim": 64, "units": 64, "layers": 1, "seed": 0}
        settings = {**defaults, **settings, "model": model, "batch_size": batch_size}
        class_counts = np.bincount(labels, minlength=len(label_names))
        if (fields["members"] or 1) > 1:
            raise SeqclfError(
                "TextClassifier.from_texts builds one model; `seqclf.run.train` (`seqclf train`) "
                f"trains ensembles. Received: members={fields['members']!r}"
            )
        values, preprocessor, record, _ = adapt_with_recipe(
            texts, class_counts, {**settings, **fields}, recipe
        )
        if values["members"] > 1:
            # The recipe's choice stays in the record; what is built is one model.
            record["why"].append(f"one model built (the recipe's {values['members']} members "
                                 "are trained by seqclf.run.train)")
            values["members"] = 1
        if callable(embeddings):
            embeddings = embeddings(preprocessor.vocabulary)
        backbone = backbone_from_settings(
            {**values, "ngram_buckets": 0}, vocab_size=preprocessor.vocabulary_size,
            num_classes=len(label_names), embeddings=embeddings,
        )
        if values.get("ngram_buckets"):
            # As `seqclf train` has it: the n-gram path is not trained with the recurrent
            # model; `fit` fits it on its own and blends the two on the validation data.
            backbone = with_linear_path(backbone, NgramLinear(
                preprocessor.vocabulary_size, len(label_names), buckets=values["ngram_buckets"],
                features="binary", name="ngram_linear"))
        return cls(backbone, preprocessor, label_names,
                   settings={**values, "recipe": recipe, "recipe_record": record})

    @classmethod
    def from_run(cls, run_dir):
        """The classifier a run directory holds (`seqclf train`'s or `save_run`'s)."""
        from seqclf.run_dir import RunDir

        run = RunDir(run_dir)
        config = run.read_config(finished_model=True)
        preprocessor = TextPreprocessor(run.read_vocabulary(), config["max_length"])
        return cls(run.load_model(), preprocessor, config["label_names"], settings=config)

    def save_run(self, run_dir):
        """Writes `config.json`, `vocabulary.txt` and `model.keras` (this classifier, which
        `keras.saving.load_model` reads back as it is) into `run_dir`, the run-directory format
        `seqclf train` writes and `from_run`, `seqclf evaluate`, `predict` and `export` read."""
        from seqclf.run_dir import RunDir

        run = RunDir(run_dir)
        run.write_config(self.run_config())
        run.write_vocabulary(self.preprocessor.vocabulary)
        run.save_model(self)
        return run_dir

    def run_config(self):
        """What `save_run` writes as `config.json`: the settings, label names and sizes."""
        return {**self._settings, "label_names": self.label_names,
                "max_length": self.preprocessor.max_length,
                "vocab_size": self.preprocessor.vocabulary_size, "seqclf_format": 1}

    def export(self, base_path, version=None, name=None, validate=True):
        """Exports for TensorFlow Serving to `base_path/<version>/` (`export_saved_model`:
        predict and classify signatures, warmup requests, C-API validation, atomic publication);
        returns the version directory."""
        from seqclf.serving.export import export_saved_model

        return export_saved_model(self.backbone, self.preprocessor, self.label_names,
                                  self.preprocessor.max_length, base_path, version=version,
                                  name=name, validate=validate)

    # --- Keras --------------------------------------------------------------------------------

    def compile(self, optimizer="auto", loss="auto", metrics="auto", *,
                steps_per_execution="auto", **kwargs):
        """Keras' `compile`; `"auto"` follows the settings the classifier was built with
        (`seqclf train`'s defaults where they say nothing): the optimizer (LazyAdam at 3e-3,
        `clipnorm=1.0`), sparse categorical cross-entropy, accuracy, 16 steps per execution.
        With the recipe's cosine schedule (`lr_schedule="cosine"`), `fit` anneals the automatic
        optimizer's learning rate over the steps it plans, as `seqclf train` does."""
        settings = self._settings
        self._compiled_with = dict(optimizer=optimizer, loss=loss, metrics=metrics,
                                   steps_per_execution=steps_per_execution, **kwargs)
        if optimizer == "auto":
            optimizer = self._auto_optimizer()
        if steps_per_execution == "auto":
            steps_per_execution = settings.get("steps_per_execution") or 16
        super().compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy" if loss == "auto" else loss,
            metrics=["accuracy"] if metrics == "auto" else metrics,
            steps_per_execution=steps_per_execution,
            **{**compile_options(optimizer), **kwargs},
        )

    def _auto_optimizer(self, total_steps=None):
        from seqclf.optimizers import make_optimizer

        settings = self._settings
        rate = settings.get("learning_rate") or 3e-3
        if total_steps and settings.get("lr_schedule") == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=total_steps)
        clipping = {k: settings.get(k) for k in ("global_clipnorm", "clipvalue")}
        clipping["clipnorm"] = (settings.get("clipnorm", 1.0)
                                if not any(clipping.values()) else None)
        return make_optimizer(settings.get("optimizer") or "lazy_adam", rate, **clipping)

    def compile_from_config(self, config):
        # Keras skips this for a model whose `compile` is overridden; this one takes Keras' own
        # arguments, so a loaded `.keras` file comes back compiled (optimizer state included).
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def text_dataset(self, x, y=None, *, batch_size=32, shuffle=False, seed=0, bucketing=True,
                     batch_tokens=None, sample_weight=None, class_weight=None):
        """Texts (and labels: ids or names; weights) → `seqclf.data.make_dataset`'s batches of
        ids: `(ids, labels)`, or `(ids, labels, weights)` when weights are given (by
        `sample_weight`, a dataset's third part, a DataFrame's column or `class_weight`). Takes
        what `fit` takes (`seqclf.models.text_inputs`)."""
        texts, labels, weights, _ = read_inputs(x, y, sample_weight)
        return self._dataset(texts, labels, weights, class_weight, batch_size=batch_size,
                             shuffle=shuffle, seed=seed, bucketing=bucketing,
                             batch_tokens=batch_tokens)

    def _ids_and_weights(self, labels, weights, class_weight):
        """Labels as class ids, and each row's weight: its `sample_weight` times its class's
        `class_weight` (None where neither is given)."""
        labels, _ = _label_ids(labels, self.label_names)
        if class_weight is not None:
            per_class = class_weights(class_weight, labels, self.label_names)
            weights = per_class[labels] * (1.0 if weights is None else weights)
        return labels, weights

    def _dataset(self, texts, labels, weights, class_weight, **options):
        if labels is None:
            labels = np.zeros(len(texts), "int64")
        else:
            labels, weights = self._ids_and_weights(labels, weights, class_weight)
        return make_dataset(texts, labels, self.preprocessor.tokenizer,
                            max_length=self.preprocessor.max_length, weights=weights, **options)

    def fit(self, x=None, y=None, batch_size=32, epochs=None, *, validation_data=None,
            validation_split=None, sample_weight=None, class_weight=None, seed=0,
            batch_tokens=None, callbacks=None, **kwargs):
        """Keras' `fit` on texts, following the recipe the classifier was built with.

        `x`: texts with `y` labels (ids or names), a pandas DataFrame, or a `tf.data.Dataset`
        of `(text, label)` or `(text, label, weight)` (see `seqclf.models.text_inputs`).
        `sample_weight` (one per text) and `class_weight` (label names or class ids to weights,
        or `"balanced"`) stay with their texts through the pipeline, which reshuffles the data
        every epoch (seeded by `seed`) and batches it by length. `validation_split` holds out
        the last fraction of the texts, before shuffling, as Keras does; `validation_data` is a
        pair, a triple with weights, a DataFrame or a dataset.

        Left unsaid, as `seqclf train` does: `epochs` are the recipe's (`settings["epochs"]`,
        else 1); the automatic optimizer (`compile()`) anneals a cosine schedule over the
        steps of this fit where the recipe chose one (on a fit that starts from step 0); and
        with validation data the best epoch's weights (by validation accuracy) are kept, by an
        `EarlyStopping` that waits the recipe's `patience` (default: all epochs). An
        `EarlyStopping` in `callbacks` replaces it.

        Where the recipe put a linear n-gram path beside the recurrent model (`from_texts`),
        `fit` trains the recurrent model alone, then, given validation texts with labels, fits
        the linear path on the training texts and blends the two on the validation texts, as
        `seqclf train` does (`seqclf.linear_path.fit_linear_and_blend`; with
        `validation_split`, the path is then fitted again on all the texts). The choice is in
        `settings["blend"]` and printed in one line unless `verbose=0`. Without validation
        texts the model is the recurrent model alone.
        """
        settings = self._settings
        if epochs is None:
            epochs = settings.get("epochs") or 1
        if not is_text(x) and not isinstance(x, (str, bytes)):
            if validation_split is not None:
                kwargs["validation_split"] = validation_split
            return super().fit(x, y, batch_size=batch_size, epochs=epochs,
                               validation_data=validation_data, sample_weight=sample_weight,
                               class_weight=class_weight,
                               callbacks=_with_step_bar(callbacks, kwargs), **kwargs)
        batch_size = batch_size or 32
        texts, labels, weights, _ = read_inputs(x, y, sample_weight)
        everything = None
        if validation_split is not None:
            if validation_data is not None:
                raise SeqclfError(
                    "Pass `validation_data` or `validation_split`, not both. Received: "
                    f"validation_split={validation_split!r}, validation_data given"
                )
            if labels is None:
                raise SeqclfError("`validation_split` needs labels. Received: y=None")
            everything = (texts, labels, weights)
            at = validation_split_at(len(texts), validation_split)
            validation_data = (texts[at:], labels[at:],
                               *(() if weights is None else (weights[at:],)))
            texts, labels = texts[:at], labels[:at]
            weights = None if weights is None else weights[:at]
        held_out = None
        if validation_data is not None:
            val = validation_data
            if isinstance(val, (tuple, list)) and is_text(val[0]):
                held_out = read_inputs(*val[:2], val[2] if len(val) > 2 else None)[:3]
            elif is_text(val):
                held_out = read_inputs(val)[:3]
            if held_out is not None:
                validation_data = self._dataset(*held_out, None, batch_size=batch_size)
        ds = self._dataset(texts, labels, weights, class_weight, batch_size=batch_size,
                           shuffle=True, seed=seed, batch_tokens=batch_tokens)
        blend = find_logit_blend(self)
        if blend is not None:
            set_blend_weights(self, 0.0, 1.0)  # the recurrent model trains alone
        self._follow_recipe(ds, epochs, kwargs)
        callbacks = list(callbacks or [])
        if validation_data is not None and not any(
                isinstance(c, keras.callbacks.EarlyStopping) for c in callbacks):
            metrics = getattr(self, "_compiled_with", {}).get("metrics", "auto")
            callbacks.insert(0, keras.callbacks.EarlyStopping(
                monitor="val_accuracy" if metrics == "auto" else "val_loss",
                patience=settings.get("patience") or epochs, restore_best_weights=True))
        kwargs["shuffle"] = False  # the dataset reshuffles itself
        history = super().fit(ds, batch_size=None, epochs=epochs,
                              validation_data=validation_data,
                              callbacks=_with_step_bar(callbacks, kwargs), **kwargs)
        if blend is not None and held_out is not None and held_out[1] is not None:
            self._blend_in(class_weight, (texts, labels, weights), held_out, everything,
                           seed=seed, batch_size=batch_size, verbose=kwargs.get("verbose"))
        return history

    def _blend_in(self, class_weight, train, held_out, everything, *, seed, batch_size,
                  verbose):
        """Fits the linear path on the training texts and blends it with the recurrent model
        on the held-out ones, as `seqclf train` does (`seqclf.linear_path`)."""
        from seqclf.linear_path import blend_summary, fit_linear_and_blend

        def rows(texts, labels, weights, class_weight=None):
            return (texts, *self._ids_and_weights(labels, weights, class_weight))

        record = fit_linear_and_blend(
            self, rows(*train, class_weight), rows(*held_out),
            refit=None if everything is None else rows(*everything, class_weight),
            seed=seed, batch_size=batch_size)
        self._settings["blend"] = record
        if verbose != 0:
            print(blend_summary(record))

    def _follow_recipe(self, ds, epochs, kwargs):
        """Recompiles the automatic optimizer with the recipe's schedule over this fit's steps."""
        compiled = getattr(self, "_compiled_with", None)
        if (compiled is None or compiled["optimizer"] != "auto"
                or self._settings.get("lr_schedule") != "cosine"
                or int(self.optimizer.iterations.numpy()) != 0):
            return
        steps = kwargs.get("steps_per_epoch") or int(ds.cardinality().numpy())
        if steps > 0:
            self.compile(**{**compiled, "optimizer": self._auto_optimizer(steps * epochs)})
            self._compiled_with = compiled

    def evaluate(self, x=None, y=None, batch_size=None, *, sample_weight=None, **kwargs):
        """Keras' `evaluate`; texts (with labels and weights, as `fit` takes them) go through
        the pipeline first."""
        if is_text(x) or isinstance(x, (str, bytes)):
            x = self.text_dataset(x, y, batch_size=batch_size or 32, sample_weight=sample_weight)
            y = batch_size = sample_weight = None
        kwargs["callbacks"] = _with_step_bar(kwargs.get("callbacks"), kwargs)
        return super().evaluate(x, y, batch_size=batch_size, sample_weight=sample_weight,
                                **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """Keras' `predict`: probabilities `[n, len(label_names)]`, in the order of `x`; for one
        string, `[1, len(label_names)]`. Takes what `fit` takes (labels are not read).

        Texts are classified in order of byte length, so that batches of similar texts are
        padded less (masking makes padding irrelevant to the result), then put back in order.
        """
        if not is_text(x) and not isinstance(x, (str, bytes)):
            if isinstance(x, (list, tuple)) and not x:
                return np.zeros((0, len(self._label_names)), "float32")
            kwargs["callbacks"] = _with_step_bar(kwargs.get("callbacks"), kwargs)
            return super().predict(x, batch_size=batch_size, **kwargs)
        values = read_inputs(x, single_text=True)[0]
        order = np.argsort([len(v) for v in values], kind="stable")
        ds = self._dataset(values[order], None, None, None, batch_size=batch_size or 64,
                           bucketing=False)
        kwargs.setdefault("verbose", 0)
        kwargs["callbacks"] = _with_step_bar(kwargs.get("callbacks"), kwargs)
        sorted_probs = super().predict(ds.map(lambda ids, _: ids), **kwargs)
        probs = np.empty_like(sorted_probs)
        probs[order] = sorted_probs
        return probs

    def predict_labels(self, texts, batch_size=None):
        """The most probable label name of each text."""
        if isinstance(texts, (str, bytes)):
            # Iterating one string would classify each of its characters.
            raise SeqclfError(f"`texts` must be a list of texts. Received: texts={texts!r:.80}")
        probs = self.predict(list(texts), batch_size=batch_size)
        return [self._label_names[k] for k in np.argmax(probs, axis=1)]

    def explain(self, texts, *, method="occlusion", batch_size=256):
        """Which tokens decided each text's predicted label: one `seqclf.explain.Explanation`
        per text (tokens, a weight each, the label and its probability; `str()` of one reads
        `word(+0.31) ...`). `method`: `"occlusion"` (the default: the probability's fall when
        the token is deleted, for the whole model on raw strings), `"gradient_x_input"` or
        `"integrated_gradients"` (recurrent models without the n-gram path); see
        `seqclf.explain`."""
        from seqclf.explain import explain_texts

        return explain_texts(self, texts, method=method, batch_size=batch_size)

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "label_names": self.label_names,
            "settings": self._settings,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "preprocessor"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _with_step_bar(callbacks, kwargs):
    """`callbacks` for Keras' `fit`, `evaluate` or `predict` called with `kwargs`: with a
    `StepProgbarLogger` as the progress bar when `verbose` asks for one (Keras' default "auto"
    does) and the user's `callbacks` hold no `ProgbarLogger` of their own.

    Keras' bar counts whole executions of `steps_per_execution` steps (16 by default here), so
    it shows `16/7` for an epoch of 7 steps; `StepProgbarLogger`, which Keras then uses instead,
    shows the steps run. A `CallbackList` is Keras' to configure and is passed as it is.
    """
    if kwargs.get("verbose", "auto") == 0 or isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    callbacks = list(callbacks or [])
    if not any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks):
        from seqclf.callbacks.progress import StepProgbarLogger

        callbacks.append(StepProgbarLogger())
    return callbacks


def _label_ids(labels, label_names=None):
    """`(ids, label_names)` of labels given as class ids or as label names."""
    labels = np.asarray(labels).reshape(-1)
    if labels.dtype.kind in "OSU":
        from seqclf.data.text_data import label_mapping

        names = [x.decode() if isinstance(x, bytes) else str(x) for x in labels]
        label_names = list(label_names) if label_names is not None else sorted(set(names))
        label_mapping("labels", set(names), label_names)  # names unknown there are an error
        index = {n: i for i, n in enumerate(label_names)}
        return np.array([index[n] for n in names], "int64"), label_names
    if labels.dtype.kind not in "iu":
        raise SeqclfError(
            f"`labels` must be class ids or label names. Received: dtype={labels.dtype}"
        )
    ids = labels.astype("int64")
    if label_names is None:
        label_names = [str(i) for i in range(int(ids.max()) + 1 if len(ids) else 0)]
    if len(ids) and (ids.min() < 0 or ids.max() >= len(label_names)):
        raise SeqclfError(
            f"Class ids must index the {len(label_names)} label names. "
            f"Received: ids from {ids.min()} to {ids.max()}"
        )
    return ids, list(label_names)


def adapt_with_recipe(texts, class_counts, values, recipe, n_train=None):
    """The recipe's pass over the training texts: `(values, preprocessor, record, lengths)`.

    The whole vocabulary first, since the recipe reads its counts; it is then cut to the
    resolved `max_tokens` (the most frequent tokens, as adapting with `max_tokens` keeps).
    `values` are `TrainConfig` fields (recipe fields at None are the recipe's to fill);
    `record` holds the statistics the recipe read, what it chose and why; `lengths` the tokens
    of each text (before truncation). `texts` may be a
    sample of the training data (streamed files): `n_train` is then its true size.
    """
    from seqclf.recipe import data_stats, resolve

    full = TextPreprocessor.from_texts(texts, max_tokens=None)
    lengths, counts = full.token_counts(texts)
    stats = data_stats(class_counts, lengths, counts[2:], n_train=n_train or len(texts))
    values, choices, why = resolve(values, recipe, stats)
    vocabulary = full.vocabulary[: values["max_tokens"]]
    preprocessor = TextPreprocessor(vocabulary, values["max_length"])
    record = {"inputs": stats.as_dict(), "choices": choices, "why": why}
    return values, preprocessor, record, lengths
