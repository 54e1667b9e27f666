"""The `seqclf` command line: train, evaluate, predict, explain, export, plot, demo.

User errors (bad data, bad arguments) print one `error: ...` line and exit with status 2; no
TensorFlow stack trace is shown for them.

Building the parser imports no TensorFlow (choices come from `seqclf.names`, and `train`'s
defaults from `TrainConfig` once the flags are parsed), so `--help` answers at once. Commands
import TensorFlow through `seqclf._startup.quiet_tensorflow`, which keeps its start-up notices
off the terminal unless `--verbose` or `SEQCLF_VERBOSE=1` is given.
"""

import argparse
import errno
import json
import logging
import math
import os
import sys

from seqclf import names
from seqclf._startup import VERBOSE_ENV

EPILOG = f"""data specs (SPEC):
  PATH                              a .tsv/.csv/.jsonl/.parquet file (GLUE SST-2 TSVs need no
                                    options)
  word_order[/CONFIG][:SPLIT]       the embedded generated word-order dataset (configs:
                                    {", ".join(names.WORD_ORDER_CONFIGS[:3])},
                                    {", ".join(names.WORD_ORDER_CONFIGS[3:])})
  tfds:NAME[/CONFIG][:SPLIT]        a TFDS catalog dataset prepared in --data-dir
"""


PREDICT_DESCRIPTION = """Classify TEXT arguments (one JSON line each: text, label, class_id,
probabilities), or with --data a whole file, streamed in batches: every input row gives one
output row, in order, with all its input columns plus `predicted_label` and the probabilities
(a `probabilities` object in JSONL, `probability_<label>` columns in CSV). The model is loaded
once. An empty text (or one of punctuation only) is classified as the model sees it, with no
words (as `predict RUN ""` is): the answer the model gives a text it knows nothing about. The
summary line on standard error counts such rows.
"""


EXPLAIN_DESCRIPTION = """Print each TEXT as the model reads it (lower-cased, punctuation
stripped) with a weight per word: how much the predicted label's probability falls when that
word is deleted (occlusion, for the whole model: n-gram and recurrent paths). Positive weights
support the predicted label, negative ones speak against it, e.g.

  negative (0.99): the(+0.00) ending(-0.00) was(+0.00) not(+0.49) good(+0.14) just(+0.07) bad(+0.07)

Occlusion was chosen over gradient x input and integrated gradients by a deletion test of
faithfulness (bench/explain_faithfulness.md): as faithful or more, and the only one of the
three that reads the n-gram path of the default model. Words beyond the run's max_length are
not read (weight 0). --html and --png files must not exist.
"""


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, received {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _add_train(sub, parents):
    # No defaults here: flags not given stay out of the namespace and `config_from_args` leaves
    # them to TrainConfig, which would cost a TensorFlow import (seqclf.run) to read now.
    p = sub.add_parser("train", help="train a classifier and write a run directory",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       argument_default=argparse.SUPPRESS, parents=parents)
    p.add_argument("--data", required=True, metavar="SPEC", help="training data spec")
    p.add_argument("--val", metavar="SPEC",
                   help="validation data (default: the dataset's validation split, or "
                        "--val-fraction of the training data held out)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--recipe", choices=names.RECIPES,
                   help="auto (default): settings not given as flags are chosen from statistics "
                        "of the training data (size, classes, lengths, vocabulary); fixed: the "
                        "pre-recipe defaults")
    p.add_argument("--model", choices=names.MODEL_NAMES)
    p.add_argument("--layers", type=_positive_int)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--units", type=_positive_int)
    p.add_argument("--embedding-dim", type=_positive_int)
    p.add_argument("--dropout", type=float)
    p.add_argument("--embedding-dropout", type=float)
    p.add_argument("--pooling", choices=names.POOLINGS,
                   help="recurrent output to classify: the final state, or max/mean over time")
    p.add_argument("--lstm-init", choices=names.LSTM_INITS,
                   help="LSTM gate-bias initialization: Keras' default (forget bias 1) or chrono")
    p.add_argument("--forget-bias", type=float, help="constant LSTM forget-gate bias")
    p.add_argument("--max-tokens", type=_positive_int,
                   help="maximum vocabulary size")
    p.add_argument("--max-length", type=_positive_int,
                   help="texts are truncated to this many tokens (and counted)")
    p.add_argument("--ngram-buckets", type=int, metavar="N",
                   help="a linear tf-idf unigram + bigram path (N hash buckets) beside the "
                        "recurrent one; 0 turns it off (default: the recipe's)")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--batch-tokens", type=_positive_int,
                   help="grow batches of short texts to about this many tokens (batch-size is "
                        "the minimum); fewer, fuller steps on CPU")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--steps-per-execution", type=_positive_int,
                   help="training steps per call of the compiled train function")
    p.add_argument("--members", type=_positive_int,
                   help="train this many models (own seed and held-out split each) and average "
                        "their probabilities; 1: one model (default: the recipe's)")
    p.add_argument("--patience", type=_positive_int,
                   help="early stopping on val_accuracy; the best epoch's weights are kept")
    p.add_argument("--learning-rate", type=_positive_float)
    p.add_argument("--lr-schedule", choices=names.LR_SCHEDULES,
                   help="cosine: decay the learning rate to 0 over --epochs; plateau: x0.3 "
                        "whenever val_loss stops improving")
    p.add_argument("--optimizer", choices=names.OPTIMIZERS)
    clip = p.add_mutually_exclusive_group()
    clip.add_argument("--clipnorm", type=_positive_float, help="clip each gradient tensor's norm")
    clip.add_argument("--global-clipnorm", type=_positive_float,
                      help="clip the global norm of all gradients")
    clip.add_argument("--clipvalue", type=_positive_float, help="clip each gradient element")
    clip.add_argument("--no-clip", action="store_true",
                      help="no gradient clipping (default: --clipnorm 1.0)")
    p.add_argument("--class-weight", metavar="balanced|LABEL=W,...",
                   help="weigh the training loss by class: balanced (every class weighs the "
                        "same in total, for imbalanced data) or given weights (labels not named "
                        "weigh 1); early stopping then follows the class-weighted accuracy")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--text-column")
    p.add_argument("--label-column")
    p.add_argument("--group-column", metavar="COLUMN",
                   help="a column naming each row's group (a review and its edited twin, "
                        "augmented copies): the held-out validation split keeps groups whole")
    p.add_argument("--data-dir", help="TFDS data directory (default ~/tensorflow_datasets)")
    p.add_argument("--stream", action="store_true",
                   help="read data files as a stream, for files larger than memory: one checking "
                        "pass, vocabulary from a 50,000-text sample, validation held out by a "
                        "hash of the line number, shuffling within 10,000 examples")
    p.add_argument("--steps-per-epoch", type=_positive_int, metavar="N",
                   help="cap on training steps per epoch (default: all the training data)")
    p.add_argument("--embeddings", metavar="PATH",
                   help="pretrained word vectors (word2vec/GloVe text format)")
    p.add_argument("--gradient-stats", type=_positive_int, metavar="N",
                   help="record per-layer gradient statistics every N steps into "
                        "RUN_DIR/gradient_stats.csv")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="write TensorBoard logs to DIR: epoch metrics and learning rate, and with "
                        "--gradient-stats the gradient statistics (`tensorboard --logdir DIR`)")
    p.add_argument("--strategy", choices=names.STRATEGIES,
                   help="tf.distribute strategy: mirrored = all local devices, multi_worker = "
                        "one process per host configured by TF_CONFIG (only the chief writes "
                        "RUN_DIR); --batch-size is the global batch")


def config_from_args(args):
    """The `TrainConfig` that `seqclf train` flags describe."""
    from seqclf.run import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    # Only the flags given are in `args` (the parser has no defaults): TrainConfig fills the rest.
    kwargs = {k: v for k, v in vars(args).items() if k in fields}
    clipping = ("clipnorm", "global_clipnorm", "clipvalue")
    if getattr(args, "no_clip", False) or any(k in kwargs for k in clipping):
        # A clipping flag replaces TrainConfig's default rule; none given keeps it.
        kwargs = {**dict.fromkeys(clipping), **kwargs}
    return TrainConfig(**kwargs)


def _cmd_train(args):
    from seqclf.run import train
    from seqclf.run_dir import RunDir

    existed = os.path.lexists(args.out)
    try:
        metrics = train(config_from_args(args))
    except BaseException:
        if not existed:  # refused before writing anything: leave no empty folder behind
            RunDir(args.out).remove_if_unused()
        raise
    print(json.dumps(metrics, sort_keys=True))
    from seqclf.distribute import end_multi_worker_run

    if end_multi_worker_run():
        # A multi-worker run, over on every worker: exit without TensorFlow's teardown, which
        # calls the coordination service that the chief hosts (see `end_multi_worker_run`).
        # Nothing is left to write: the run directory is complete and its writers closed.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _cmd_evaluate(args):
    from seqclf.run import evaluate

    result = evaluate(args.run_dir, args.data, data_dir=args.data_dir,
                      text_column=args.text_column, label_column=args.label_column,
                      seed=args.seed, quiet=args.quiet)
    from seqclf.class_report import collapse_warning, format_report

    # The table on stderr, so that stdout stays one JSON object for scripts; the collapse
    # warning even with --quiet.
    if not args.quiet:
        print(format_report(result), file=sys.stderr)
    from seqclf.run_dir import RunDir

    weighted = RunDir(args.run_dir).read_config().get("class_weight") is not None
    warning = collapse_warning(result, class_weighted=weighted)
    if warning:
        print(warning, file=sys.stderr)
    print(json.dumps(result, sort_keys=True))


def _cmd_predict(args):
    if args.data is not None:
        return _predict_data(args)
    if args.output is not None:
        raise _user_error(f"--output needs --data. Received: output={args.output!r}")
    if not args.texts:
        raise _user_error("Give at least one TEXT to classify, or --data FILE. "
                          "Received: no texts")
    if args.server:
        from seqclf.serving import predict_texts

        if not args.model_name:
            raise _user_error("--server needs --model-name. Received: model_name=None")
        results = predict_texts(args.server, args.model_name, args.texts, grpc=args.grpc,
                                version=args.version)
    else:
        if not args.run_dir:
            raise _user_error("Give a RUN_DIR, or --server and --model-name. Received: neither")
        from seqclf.run import predict

        results = predict(args.run_dir, args.texts, batch_size=args.batch_size)
    for r in results:
        print(json.dumps(r, ensure_ascii=False))


def _predict_data(args):
    if args.texts or args.server:
        given = f"texts={args.texts!r:.80}" if args.texts else f"server={args.server!r}"
        raise _user_error(f"--data classifies a file with a RUN_DIR; give no TEXT and no "
                          f"--server with it. Received: {given}")
    if not args.run_dir:
        raise _user_error("--data needs a RUN_DIR. Received: none")
    from seqclf.batch_predict import output_format, predict_file, summary

    if args.output is not None:
        output_format(args.output)  # refuse a taken name before paying for the model
    from seqclf.models import TextClassifier

    classifier = TextClassifier.from_run(args.run_dir)
    result = predict_file(classifier, args.data, output=args.output,
                          text_column=args.text_column, batch_size=args.batch_size,
                          progress=not args.quiet)
    if not args.quiet or result["empty_texts"] or result["skipped"]:
        print(f"seqclf predict: {summary(result, args.data)}", file=sys.stderr)


def _cmd_explain(args):
    if not args.texts:
        raise _user_error("Give at least one TEXT to explain. Received: no texts")
    from seqclf._checks import check_new_file

    # Taken names are refused before the model is loaded; nothing of the user's is replaced.
    if args.html is not None:
        check_new_file("html", args.html, (".html", ".htm"))
    if args.png is not None:
        check_new_file("png", args.png, (".png",))
    from seqclf.explain import plot_heat_lines, to_html
    from seqclf.models import TextClassifier

    explanations = TextClassifier.from_run(args.run_dir).explain(args.texts, method=args.method)
    for e in explanations:
        print(json.dumps(e.as_dict(), ensure_ascii=False) if args.json else str(e))
    if args.html is not None:
        from seqclf._io import atomic_write_text

        atomic_write_text(args.html, to_html(explanations))
    if args.png is not None:
        plot_heat_lines(explanations, args.png)


def _cmd_export(args):
    from seqclf.serving import export_run

    path = export_run(args.run_dir, args.model_base_path, version=args.version, name=args.name)
    print(path)


def _cmd_plot(args):
    from seqclf.plotting import plot_run

    for path in plot_run(args.run_dir):
        print(path)


def _cmd_demo(args):
    from seqclf.demo import run_demo

    summary = run_demo(args.out, smoke=args.smoke, quiet=args.quiet, seed=args.seed,
                       data_dir=args.data_dir)
    if not args.quiet:
        print(f"wrote {os.path.join(args.out, 'report.md')}")
    return summary


def _user_error(message):
    from seqclf.errors import SeqclfError

    return SeqclfError(message)


def build_parser():
    verbose_help = (f"show TensorFlow's start-up and C++ log lines, which are hidden by default "
                    f"(also {VERBOSE_ENV}=1)")
    parser = argparse.ArgumentParser(
        prog="seqclf",
        description="Recurrent text classifiers with Keras 3: train, evaluate, predict, export, "
                    "plot, and the vanishing-gradient demo.",
    )
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    # Accepted after the command too; SUPPRESS keeps a subcommand from resetting the flag that
    # was given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help=verbose_help)
    parents = [common]
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub, parents)

    p = sub.add_parser("evaluate", help="score a run; prints one JSON object (and the per-class "
                                        "table on stderr)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter, parents=parents)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", required=True, metavar="SPEC")
    p.add_argument("--seed", type=int, default=0, help="seed of the word shuffling")
    p.add_argument("--text-column")
    p.add_argument("--label-column")
    p.add_argument("--data-dir")
    p.add_argument("--quiet", action="store_true",
                   help="no progress and no per-class table (a collapse warning still shows)")

    p = sub.add_parser("predict", help="classify texts or a file; one JSON line per text",
                       description=PREDICT_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter, parents=parents)
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?",
                   help="a trained run (omit with --server)")
    p.add_argument("texts", metavar="TEXT", nargs="*")
    p.add_argument("--data", metavar="FILE",
                   help="classify every row of a .tsv/.csv/.jsonl/.parquet file, or - for "
                        "standard input (one text per line)")
    p.add_argument("--output", metavar="FILE",
                   help="with --data: write a .csv or .jsonl file, which must not exist "
                        "(default: JSONL on standard output)")
    p.add_argument("--text-column", help="with --data: the column holding the texts")
    p.add_argument("--batch-size", type=_positive_int, default=64,
                   help="texts per model call (default: 64)")
    p.add_argument("--quiet", action="store_true",
                   help="with --data: no progress bar, and the summary line only when rows had "
                        "no words or lines were skipped")
    p.add_argument("--server", metavar="HOST:PORT", help="ask a TensorFlow Serving server")
    p.add_argument("--grpc", action="store_true", help="use gRPC instead of REST")
    p.add_argument("--model-name")
    p.add_argument("--version", type=_positive_int)

    p = sub.add_parser("explain", help="which words decided each text's predicted label",
                       description=EXPLAIN_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter, parents=parents)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("texts", metavar="TEXT", nargs="*")
    p.add_argument("--method", choices=names.EXPLAIN_METHODS, default="occlusion",
                   help="occlusion (default): the probability's fall when the token is deleted, "
                        "for the whole model; the gradient methods need a recurrent model "
                        "without the n-gram path (--ngram-buckets 0)")
    p.add_argument("--json", action="store_true", help="one JSON object per text")
    p.add_argument("--html", metavar="FILE", help="also write the texts as shaded HTML")
    p.add_argument("--png", metavar="FILE", help="also draw the texts as heat lines in a PNG")

    p = sub.add_parser("export", help="export a run as a TensorFlow Serving SavedModel",
                       parents=parents)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--model-base-path", required=True, metavar="BASE")
    p.add_argument("--version", type=_positive_int,
                   help="version number (default: one more than the highest present)")
    p.add_argument("--name", help="model name (default: the base path's directory name)")

    p = sub.add_parser("plot", help="draw a run's curves and gradient plots into RUN_DIR",
                       parents=parents)
    p.add_argument("run_dir", metavar="RUN_DIR")

    p = sub.add_parser("demo", help="the vanishing/exploding-gradient demonstration",
                       parents=parents)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for tests (< 1 minute)")
    p.add_argument("--data-dir", help="TFDS data directory for the word-order dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return parser


COMMANDS = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "explain": _cmd_explain,
    "export": _cmd_export,
    "plot": _cmd_plot,
    "demo": _cmd_demo,
}


def main(argv=None):
    args = build_parser().parse_args(argv)
    from seqclf._startup import quiet_tensorflow
    from seqclf.errors import SeqclfError

    # MultiWorkerMirroredStrategy must configure TensorFlow before its first op (seqclf.run).
    multi_worker = getattr(args, "strategy", None) == "multi_worker"
    quiet_tensorflow(args.verbose, spend_notices=not multi_worker)

    if args.command == "predict" and args.run_dir and args.server:
        # With --server every positional is a text.
        args.texts = [args.run_dir, *args.texts]
        args.run_dir = None
    try:
        COMMANDS[args.command](args)
    except SeqclfError as e:
        print(f"seqclf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in _USER_ERRNOS:
            raise
        # The file system said no (disk full, read-only, permissions): one line naming it.
        print(f"seqclf {args.command}: error: {_os_error_line(e, args)}", file=sys.stderr)
        return 2
    except Exception as e:
        if _disk_full(e):
            # TensorFlow's savers report a full disk as ResourceExhaustedError, not OSError.
            full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            print(f"seqclf {args.command}: error: {_os_error_line(full, args)}", file=sys.stderr)
            return 2
        if not _out_of_memory(e):
            raise
        sizes = ", ".join(f"{k}={getattr(args, k)!r}" for k in _SIZE_FLAGS if hasattr(args, k))
        print(f"seqclf {args.command}: error: out of memory ({type(e).__name__}); choose smaller "
              f"sizes. Received: {sizes or 'defaults'}", file=sys.stderr)
        return 2
    return 0


# File-system refusals that are the user's to fix, not seqclf bugs.
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}
def _os_error_line(e, args):
    """The one line for a refused write: the path the system named, else the command's output
    (a writer such as h5py may not say which file it was writing); on a full disk during
    `train`, that the run resumes from its last completed epoch once there is room."""
    target = e.filename
    if target is None:
        for flag in ("out", "output", "model_base_path"):
            if getattr(args, flag, None):
                target = f"{flag}={getattr(args, flag)!r}"
                break
    else:
        target = repr(target)
    hint = ""
    out = getattr(args, "out", None)
    if args.command == "train" and out and e.errno in (errno.ENOSPC, errno.EDQUOT):
        if os.path.isfile(os.path.join(out, "metrics.json")):  # written after model.keras
            hint = (f"; model.keras and metrics.json were saved, some plots were not: free some "
                    f"space and run `seqclf plot {out}`")
        else:
            hint = ("; free some space and run the same command again: it resumes from the "
                    "last completed epoch")
    return f"{e.strerror}{hint}. Received: {target}"


_SIZE_FLAGS = ("units", "embedding_dim", "layers", "batch_size", "batch_tokens", "max_tokens",
               "max_length")


def _disk_full(e):
    """Whether `e` (TensorFlow's, with the C library's message) says the disk is full."""
    return os.strerror(errno.ENOSPC) in str(e) or "No space left on device" in str(e)


def _out_of_memory(e):
    """Whether `e` says memory ran out: Python's, or TensorFlow's (`ResourceExhaustedError`),
    whose message may also come wrapped in another error's."""
    if isinstance(e, MemoryError) or type(e).__name__ == "ResourceExhaustedError":
        return True
    text = str(e)
    return "OOM when allocating" in text or "ResourceExhaustedError" in text


if __name__ == "__main__":
    sys.exit(main())
