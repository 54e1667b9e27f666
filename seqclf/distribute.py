"""`tf.distribute` strategies for `seqclf train --strategy`, chief detection and input sharding.

* `default`: TensorFlow's default strategy (one device; what `model.fit` does without a scope).
* `mirrored`: `tf.distribute.MirroredStrategy` over the local devices (GPUs, or the logical
  devices the process configured); synchronous, gradients summed by all-reduce.
* `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`, one process per host, configured
  from the standard `TF_CONFIG` environment variable (cluster spec plus this task).

The batch size given to training is the **global** batch: each step, every replica takes a share
of it (global / `num_replicas_in_sync`, the shares differing by at most one example).

Why the training input is split here rather than by `experimental_distribute_dataset`: the data is
an in-memory tensor (`from_tensor_slices`), so `FILE` auto-sharding has no files to split and only
`DATA` sharding applies: every worker runs the whole (cheap, cached) pipeline with the same seed,
so all workers see the same global batches in the same order, and each keeps its replicas' share of
every batch. That also means every worker takes the same number of steps per epoch, even with
bucketing (a partial last batch, and with `batch_tokens`, whose batch count is undeclared, one at
the end of each bucket): no worker waits forever at the epoch's last all-reduce.
`distribute_dataset` does that split by hand and adds per-example loss weights, because Keras
averages each replica's *own* mean loss; with an odd batch the shares differ in size, and an
unweighted average of their means is not the mean over the global batch. With the weights, the
summed gradient is exactly the gradient a single device computes on the same global batch (up to
float32 summation order). Evaluation needs no weights (nothing is learned from it; Keras averages
the replicas' running means, each over almost exactly 1/replicas of the data), so it goes through
Keras' own distribution with `AutoShardPolicy.DATA` set explicitly (`AUTO` would first try `FILE`,
fail, and log a warning before falling back to `DATA`).

Keras 3.15 needs three work-arounds here, each one measured: `build_before_fit` (Keras' pre-fit
build drops a batch under `MirroredStrategy` and fails under `MultiWorkerMirroredStrategy`), a
corrected cross-worker reduction of the logs (`seqclf._compat.patch_multi_worker_reduce`), and
`steps_per_execution=1` under any multi-replica strategy (set by `seqclf.run.train`).
"""

import json
import os
import socket
import time

import tensorflow as tf

from seqclf import _compat
from seqclf.errors import SeqclfError
from seqclf.names import STRATEGIES

__all__ = [
    "STRATEGIES",
    "build_before_fit",
    "distribute_dataset",
    "end_multi_worker_run",
    "is_chief",
    "make_strategy",
    "shard_by_data",
]


def _tf_config_error(problem, raw):
    shown = raw if raw is None or len(raw) <= 300 else raw[:300] + "..."
    return SeqclfError(
        f"--strategy multi_worker needs the TF_CONFIG environment variable to hold the cluster "
        f"spec and this task, e.g. "
        f'{{"cluster": {{"worker": ["host1:12345", "host2:12345"]}}, '
        f'"task": {{"type": "worker", "index": 0}}}}; {problem}. Received: TF_CONFIG={shown!r}'
    )


def _check_tf_config(raw):
    """Raises a `SeqclfError` naming the problem unless `raw` is a usable TF_CONFIG."""
    if raw is None or not raw.strip():
        raise _tf_config_error("it is not set", raw)
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _tf_config_error(f"it is not valid JSON ({e})", raw) from None
    if not isinstance(spec, dict):
        raise _tf_config_error("it must be a JSON object", raw)
    cluster, task = spec.get("cluster"), spec.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _tf_config_error('"cluster" must map job names to lists of "host:port"', raw)
    for job, addresses in cluster.items():
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and ":" in a for a in addresses)
        ):
            raise _tf_config_error(f'cluster job {job!r} must be a list of "host:port"', raw)
    if "worker" not in cluster and "chief" not in cluster:
        raise _tf_config_error('"cluster" has neither a "worker" nor a "chief" job', raw)
    if not isinstance(task, dict):
        raise _tf_config_error('"task" must be {"type": ..., "index": ...}', raw)
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise _tf_config_error(f"task type {task_type!r} is not a job of the cluster", raw)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(
        cluster[task_type]
    ):
        raise _tf_config_error(
            f"task index {index!r} is not an index of cluster job {task_type!r}", raw
        )


def make_strategy(name="default"):
    """Returns the `tf.distribute.Strategy` named by `seqclf train --strategy`.

    Call it before any other TensorFlow work in the process: `MultiWorkerMirroredStrategy`
    configures the collective ops of the eager context, which TensorFlow allows only before the
    context first runs an op.

    Args:
        name: `"default"`, `"mirrored"` or `"multi_worker"` (reads `TF_CONFIG`).
    """
    if name not in STRATEGIES:
        raise SeqclfError(
            f"Unknown strategy. Expected one of: {', '.join(STRATEGIES)}. "
            f"Received: strategy={name!r}"
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    _check_tf_config(os.environ.get("TF_CONFIG"))
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver()
        )
        _MULTI_WORKER.append(strategy)
        return strategy
    except RuntimeError as e:
        if "startup" not in str(e):
            raise
        raise SeqclfError(
            "--strategy multi_worker must be set up before this process runs any TensorFlow "
            f"operation ({e}); run `seqclf train` in a fresh process, or create the strategy "
            "first in your script. Received: strategy='multi_worker' after TensorFlow started"
        ) from None


# The multi-worker strategy this process made (at most one: TensorFlow allows one per process).
_MULTI_WORKER = []


def end_multi_worker_run(wait_s=5.0):
    """Meets the other workers once this process's run is over; returns whether this process
    belongs to a multi-worker run, and must then exit at once without TensorFlow's teardown
    (`os._exit`, see `seqclf.cli`).

    The chief hosts TensorFlow's coordination service, and every worker's teardown calls it.
    Whichever process ends first leaves the other to fail: a worker still running when the
    chief's process ends loses the service (its heartbeat and its own shutdown fail, "Failed to
    send RPC to coordination service ... Connection refused", and it hangs or dies with a
    non-zero status), and a chief still tearing down when a worker has gone sees that worker's
    heartbeats stop and logs "BaseCollectiveExecutor::StartAbort ... tasks are unhealthy" (after
    a few seconds, so only on a busy machine). So:

    * a last all-reduce makes every worker wait until all have finished (the chief's plots
      included);
    * the other workers then exit at once, without the teardown;
    * the chief waits (at most `wait_s`) until their servers have closed, so that none is still
      collecting the all-reduce's result, and exits without the teardown too: its service stops
      with its process, before it can miss a heartbeat.
    """
    if not _MULTI_WORKER:
        return False
    strategy = _MULTI_WORKER[-1]
    # Every worker contributes 1: the sum can only be computed once all have arrived.
    # In a tf.function (run eagerly, the strategy warns of its overhead), without AutoGraph:
    # there is no Python control flow to convert, and AutoGraph warns that it cannot parse
    # nested lambdas.
    def one():
        return tf.constant(1.0)

    @tf.function(autograph=False)
    def arrive():
        return strategy.run(one)

    strategy.reduce("SUM", arrive(), axis=None)
    if is_chief(strategy):
        _wait_until_closed(_other_addresses(strategy.cluster_resolver), wait_s)
    return True


def _other_addresses(resolver):
    """The `host:port` of every task in the cluster but this one."""
    cluster = resolver.cluster_spec().as_dict()
    own = (resolver.task_type, resolver.task_id or 0)
    return [address for job, tasks in cluster.items()
            for index, address in (tasks.items() if isinstance(tasks, dict) else enumerate(tasks))
            if (job, index) != own]


def _wait_until_closed(addresses, wait_s):
    """Returns once nothing accepts connections at any of `addresses`, or after `wait_s`."""
    deadline = time.monotonic() + wait_s
    pending = list(addresses)
    while pending and time.monotonic() < deadline:
        still = []
        for address in pending:
            host, _, port = address.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=0.5):
                    still.append(address)
            except OSError:
                pass  # refused (or unreachable): that task's server is gone
        pending = still
        if pending:
            time.sleep(0.05)


def is_chief(strategy):
    """Whether this process is the chief: the one that writes the run directory.

    The chief is the `chief` task when the cluster has one, else worker 0; a single-process
    strategy (default, mirrored) is always its own chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or not task_type:
        return True
    if task_type == "chief":
        return True
    return (
        task_type == "worker"
        and (resolver.task_id or 0) == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def shard_by_data(dataset):
    """`dataset` with `AutoShardPolicy.DATA`: in-memory data has no files to shard by."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def distribute_dataset(strategy, dataset):
    """Splits every global batch `(ids, labels)` of `dataset` among the replicas of `strategy`.

    Every worker runs `dataset` whole (same seed, so the same batches in the same order) and
    keeps the shares of its own replicas, so all workers take the same number of steps. Each
    share carries per-example loss weights `share_size * replicas / global_size`: Keras scales
    each replica's mean loss by `1 / replicas`, so the weighted shares add up to the mean loss
    over the global batch even when a batch does not split evenly (or a share is empty).

    Returns `dataset` unchanged for a single-replica strategy, else a distributed dataset of
    `(ids, labels, sample_weight)` for `model.fit`.
    """
    if strategy.num_replicas_in_sync == 1:
        return dataset
    return strategy.distribute_datasets_from_function(
        lambda context: replica_shares(dataset, context)
    )


def replica_shares(dataset, context):
    """This worker's dataset for `distribute_datasets_from_function`: for each global batch,
    one `(ids, labels, sample_weight)` share per local replica, in replica order."""
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local

    def shares(ids, labels):
        n = tf.shape(labels, out_type=tf.int64)[0]

        def share(j):
            r = first + j
            # Balanced contiguous split: share sizes differ by at most one example.
            start, end = n * r // replicas, n * (r + 1) // replicas
            weight = tf.cast((end - start) * replicas, tf.float32) / tf.cast(n, tf.float32)
            return ids[start:end], labels[start:end], tf.fill([end - start], weight)

        # The iterator deals a worker's elements to its local replicas in turn, so `local`
        # consecutive elements make one step.
        return tf.data.Dataset.range(local).map(share)

    options = tf.data.Options()
    # Sharded by hand above; tf.data must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.flat_map(shares).with_options(options)


def build_before_fit(model, strategy, element_spec):
    """Builds a compiled model's metric, loss and optimizer state before `fit`, in `strategy`.

    With a multi-replica strategy, Keras 3 builds that state in `fit` from a first batch it
    draws from the distributed input: under `MirroredStrategy` that batch is then missing from
    the first epoch (measured: final weights 0.03 away from single-device training, 3e-8 with
    this function), and under `MultiWorkerMirroredStrategy` it all-reduces the batch to learn
    its shapes, which fails on an `(ids, labels)` batch (keras-team/keras#20585) and could not
    work with shares whose shapes differ between workers. Building from the dataset's
    `element_spec` needs no data; Keras' own build is then skipped for `model`. Single-replica
    strategies are left to Keras.
    """
    if strategy.num_replicas_in_sync == 1:
        return
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _compat.patch_multi_worker_reduce()
    with strategy.scope():
        _compat.build_from_spec(model, element_spec)
