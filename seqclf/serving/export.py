"""SavedModel export of a trained run for TensorFlow Serving.

The export is a self-contained SavedModel (tag set `serve`): the vectorizer's vocabulary lookup
tables live inside the graph, so a server needs neither Python, seqclf nor the training
vocabulary file. Two signatures are written:

* `serving_default` (Predict API): `text` DT_STRING [-1] -> `probabilities` DT_FLOAT [-1, C],
  `class_id` DT_INT64 [-1], `label` DT_STRING [-1].
* `classify` (Classify API): `inputs` DT_STRING [-1] of serialized `tf.Example`s with a `text`
  bytes feature -> `classes` DT_STRING [-1, C], `scores` DT_FLOAT [-1, C]. Its `method_name` is
  rewritten to `tensorflow/serving/classify` after `ExportArchive.write_out` (which always writes
  `tensorflow/serving/predict`), because TF Serving's Classify handler checks it.

Versions are published atomically: everything is written and validated under a hidden, non
numeric sibling directory (`BASE/.tmp-<N>-<pid>`) that TF Serving's file system source ignores,
then renamed to `BASE/<N>`. An interrupted export therefore never leaves a partial numeric version
that a server could pick up.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil

from seqclf import _compat
from seqclf._checks import check_positive_int

# One prefix for every temporary name seqclf writes (files and export directories alike).
from seqclf._io import TMP_PREFIX, atomic_write_text
from seqclf.errors import SeqclfError
from seqclf.serving.capi import CApiError, CApiHarness
from seqclf.serving.inspection import (
    WARMUP_FILE,
    audit_ops,
    read_signatures,
)

SERVE_TAG = "serve"
PREDICT_SIGNATURE = "serving_default"
CLASSIFY_SIGNATURE = "classify"
PREDICT_METHOD_NAME = "tensorflow/serving/predict"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"

# Texts replayed by TF Serving at load time (assets.extra/tf_serving_warmup_requests) and by
# `validate_export`: they exercise the padding / empty-row paths as well as the plain one.
WARMUP_TEXTS = (
    ("a short example text",),
    ("", "   ", "?!", "an example that is a little longer than the others in this batch"),
    ("zzzqqq xxyyzz", "naïve café 😀", "some text " * 64),
)


def _version_dirs(model_base_path):
    """Numeric version directories under `model_base_path`, as ints."""
    if not os.path.isdir(model_base_path):
        return []
    return sorted(int(n) for n in os.listdir(model_base_path) if re.fullmatch(r"\d+", n))


def next_version(model_base_path):
    """One more than the highest numeric version in `model_base_path` (1 when there is none)."""
    versions = _version_dirs(model_base_path)
    return versions[-1] + 1 if versions else 1


def _check_args(model, vectorizer, label_names, max_length, version, name):
    if not isinstance(label_names, (list, tuple)) or not label_names:
        raise SeqclfError(
            "`label_names` must be a non-empty list of strings. "
            f"Received: label_names={label_names!r}"
        )
    if not all(isinstance(n, str) for n in label_names) or len(set(label_names)) != len(
        label_names
    ):
        raise SeqclfError(
            f"`label_names` must be distinct strings. Received: label_names={list(label_names)!r}"
        )
    check_positive_int("max_length", max_length)
    check_positive_int("version", version, allow_none=True)
    if version is not None and version >= 2**63:
        # TF Serving reads version directories as int64.
        raise SeqclfError(f"`version` must be below 2**63 (TF Serving's int64). "
                          f"Received: version={version!r}")
    if name in (".", ".."):
        raise SeqclfError(f"`name` must name a model, not a directory. Received: name={name!r}")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise SeqclfError(
            "`name` may only contain letters, digits, '_', '.' and '-' (it becomes a URL path "
            f"segment in TF Serving). Received: name={name!r}"
        )
    num_classes = model.output_shape[-1]
    if num_classes != len(label_names):
        raise SeqclfError(
            "The model's output size must equal the number of labels. "
            f"Received: model.output_shape={model.output_shape}, "
            f"len(label_names)={len(label_names)}"
        )
    if getattr(vectorizer, "output_mode", "int") != "int":
        raise SeqclfError(
            "The vectorizer must use output_mode='int'. "
            f"Received: output_mode={vectorizer.output_mode!r}"
        )


@contextlib.contextmanager
def _cpu_only_rnn_kernels(model):
    """Trace RNN layers with their generic kernels instead of cuDNN.

    Keras picks `CudnnRNN*` ops when a GPU is visible at trace time; those ops have no CPU kernel
    and would make the export unservable on CPU-only TF Serving.
    """
    saved = []
    for layer in _compat.all_sublayers(model):
        if hasattr(layer, "use_cudnn"):
            saved.append((layer, layer.use_cudnn))
            layer.use_cudnn = False
    try:
        yield
    finally:
        for layer, value in saved:
            layer.use_cudnn = value


def _build_archive(model, vectorizer, label_names, max_length):
    import keras
    import tensorflow as tf

    from seqclf.models.text_preprocessor import TextPreprocessor

    num_classes = len(label_names)
    labels = tf.constant(list(label_names), dtype=tf.string)
    # The graph calls the preprocessor (made here: making it reads the vocabulary, which a
    # traced function cannot), the text→ids step of training too.
    preprocessor = TextPreprocessor.from_vectorizer(vectorizer, max_length)

    def predict_fn(texts):
        ids = preprocessor(texts)
        probabilities = tf.cast(model(ids, training=False), tf.float32)
        probabilities = tf.ensure_shape(probabilities, [None, num_classes])
        class_id = tf.argmax(probabilities, axis=1, output_type=tf.int64)
        return probabilities, class_id

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        probabilities, class_id = predict_fn(text)
        return {
            "probabilities": probabilities,
            "class_id": class_id,
            "label": tf.gather(labels, class_id),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(inputs):
        features = tf.io.parse_example(
            inputs, {"text": tf.io.FixedLenFeature([], tf.string, default_value="")}
        )
        probabilities, _ = predict_fn(features["text"])
        batch = tf.shape(probabilities, out_type=tf.int64)[0]
        classes = tf.gather(
            labels, tf.zeros([batch, 1], tf.int64) + tf.range(num_classes, dtype=tf.int64)
        )
        return {
            "classes": tf.ensure_shape(classes, [None, num_classes]),
            "scores": probabilities,
        }

    if not preprocessor.built:
        # An adapted TextVectorization is only marked built once called; ExportArchive refuses
        # unbuilt layers.
        preprocessor(tf.constant([""]))
    archive = keras.export.ExportArchive()
    archive.track(model)
    # The vectorizer's StringLookup tables are TF resources: tracking the layer makes
    # ExportArchive save them (and their initializer) inside the SavedModel.
    archive.track(preprocessor)
    archive.add_endpoint(PREDICT_SIGNATURE, serve)
    archive.add_endpoint(CLASSIFY_SIGNATURE, classify)
    return archive


def _set_classify_method_name(export_dir):
    """Rewrite the `classify` signature's method_name (ExportArchive writes the predict one)."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if CLASSIFY_SIGNATURE in meta_graph.signature_def:
            meta_graph.signature_def[CLASSIFY_SIGNATURE].method_name = CLASSIFY_METHOD_NAME
    with open(path, "wb") as f:
        f.write(saved_model.SerializeToString(deterministic=True))
    # fingerprint.pb hashes saved_model.pb; regenerate it so it describes the rewritten file.
    fingerprint = _compat.saved_model_fingerprint(export_dir)
    if fingerprint is not None:
        with open(os.path.join(export_dir, "fingerprint.pb"), "wb") as f:
            f.write(fingerprint)


def warmup_requests(model_name, texts_batches=WARMUP_TEXTS):
    """`PredictionLog` protos with Predict requests for `serving_default`."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    logs = []
    for texts in texts_batches:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=PREDICT_SIGNATURE)
        )
        request.inputs["text"].CopyFrom(
            tf.make_tensor_proto(
                [t.encode("utf-8") for t in texts], dtype=tf.string, shape=[len(texts)]
            )
        )
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return logs


def write_warmup(export_dir, model_name):
    """Writes the warmup requests TF Serving replays at load into `export_dir`; returns the path."""
    import tensorflow as tf

    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in warmup_requests(model_name):
            writer.write(log.SerializeToString())
    return path


def validate_export(export_dir, num_classes=None, capi=True):
    """Check an export the way TF Serving will use it; raise `SeqclfError` on any problem.

    Checks the signatures (keys, dtypes, shapes, classify method_name), audits the ops (all
    registered in core TF, none GPU-only or Python callbacks), and with `capi=True` loads the
    export through TensorFlow's C++ loader in a fresh process and replays every warmup request.
    """
    signatures = read_signatures(export_dir)
    expected = {
        PREDICT_SIGNATURE: (
            PREDICT_METHOD_NAME,
            {"text": ("DT_STRING", [-1])},
            {
                "probabilities": ("DT_FLOAT", [-1, num_classes or -2]),
                "class_id": ("DT_INT64", [-1]),
                "label": ("DT_STRING", [-1]),
            },
        ),
        CLASSIFY_SIGNATURE: (
            CLASSIFY_METHOD_NAME,
            {"inputs": ("DT_STRING", [-1])},
            {
                "classes": ("DT_STRING", [-1, num_classes or -2]),
                "scores": ("DT_FLOAT", [-1, num_classes or -2]),
            },
        ),
    }
    for key, (method, inputs, outputs) in expected.items():
        sig = signatures.get(key)
        if sig is None:
            raise SeqclfError(
                f"Export is missing the {key!r} signature. "
                f"Received: signatures={sorted(signatures)}"
            )
        if sig["method_name"] != method:
            raise SeqclfError(
                f"Signature {key!r} must have method_name {method!r}. "
                f"Received: method_name={sig['method_name']!r}"
            )
        for kind, want in (("inputs", inputs), ("outputs", outputs)):
            got = {k: (v["dtype"], v["shape"]) for k, v in sig[kind].items()}
            ok = set(got) == set(want) and all(
                got[k][0] == d
                and len(got[k][1]) == len(s)
                and all(a == b or b == -2 for a, b in zip(got[k][1], s, strict=True))
                for k, (d, s) in want.items()
            )
            if not ok:
                raise SeqclfError(
                    f"Signature {key!r} has unexpected {kind}. Expected {want}. Received: {got}"
                )
    problems = audit_ops(export_dir)["problems"]
    if problems:
        raise SeqclfError(f"Export contains ops a CPU TF Serving cannot run. Received: {problems}")
    if capi:
        try:
            with CApiHarness() as harness:
                harness.load(export_dir)
                harness.replay_warmup(export_dir)
        except CApiError as e:
            raise SeqclfError(f"TensorFlow's C++ loader rejected the export. Received: {e}") from e


def export_saved_model(
    model,
    vectorizer,
    label_names,
    max_length,
    model_base_path,
    version=None,
    name=None,
    validate=True,
):
    """Export a trained classifier to `model_base_path/<version>/` for TF Serving.

    Args:
        model: `keras.Model` mapping int64 token ids `[batch, time]` to probabilities `[batch, C]`.
        vectorizer: adapted `keras.layers.TextVectorization` with `output_mode="int"`, or a
            `seqclf.models.TextPreprocessor` (cut at `max_length` all the same).
        label_names: the `C` class names, in the model's output order.
        max_length: token ids beyond this position are dropped.
        model_base_path: TF Serving's `model_base_path`; created if needed.
        version: version number; default one more than the highest existing version.
        name: model name written into the warmup requests; default the base directory's name.
        validate: load the export through TF's C++ loader (fresh process) and replay the warmup
            requests before publishing it. Structural checks and the ops audit always run.

    Returns:
        The path of the published version directory.
    """
    _check_args(model, vectorizer, label_names, max_length, version, name)
    model_base_path = os.path.abspath(os.fspath(model_base_path))
    name = name or os.path.basename(model_base_path.rstrip(os.sep)) or "model"
    os.makedirs(model_base_path, exist_ok=True)
    if version is None:
        version = next_version(model_base_path)
    final_dir = os.path.join(model_base_path, str(version))
    if os.path.exists(final_dir):
        raise SeqclfError(
            "Refusing to modify an existing model version; pick another version. "
            f"Received: version={version} (already at {final_dir!r})"
        )
    tmp_dir = os.path.join(model_base_path, f"{TMP_PREFIX}{version}-{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        with _cpu_only_rnn_kernels(model):
            archive = _build_archive(model, vectorizer, label_names, max_length)
            archive.write_out(tmp_dir, verbose=False)
        _set_classify_method_name(tmp_dir)
        write_warmup(tmp_dir, name)
        validate_export(tmp_dir, num_classes=len(label_names), capi=validate)
        if os.path.exists(final_dir):
            raise SeqclfError(
                "Another export published this version meanwhile. "
                f"Received: version={version} (already at {final_dir!r})"
            )
        # rename(2) is atomic within a file system: TF Serving sees either no version or all of it.
        os.rename(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return final_dir


def write_models_config(path, models):
    """Write a TF Serving `--model_config_file` (ModelServerConfig text format).

    Args:
        path: file to write.
        models: mapping of model name -> model_base_path (absolute, as the server sees it).

    Returns:
        The text written; it is parsed back with the real proto before writing.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    if not models:
        raise SeqclfError(f"`models` must name at least one model. Received: models={models!r}")
    config = model_server_config_pb2.ModelServerConfig()
    for model_name, base_path in models.items():
        entry = config.model_config_list.config.add()
        entry.name = model_name
        entry.base_path = str(base_path)
        entry.model_platform = "tensorflow"
    text = text_format.MessageToString(config)
    # Parsing back proves the file is what `tensorflow_model_server --model_config_file` reads.
    text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    atomic_write_text(path, text)
    return text
