"""A custom training loop on `tf.distribute`, with checkpoints in the original format.

`Trainer` knows no task: it runs any Keras model whose variables carry
original names with the functions a task gives it (`bert_tf.tasks`), a
`model_fn` building the model, a `loss_fn(model, features, training) ->
(loss, logs)`, dataset functions and, for `evaluate`, an `eval_fn(model,
features) -> {name: (numerator, denominator)}`:

```python
trainer = Trainer(strategy, pretraining.model_fn(config), pretraining.loss_fn,
                  output_dir,
                  optimizer_fn=lambda: create_optimizer(1e-4, 1000, 100),
                  global_batch_size=32)
trainer.initialize(init_checkpoint)  # resumes from output_dir if it can
trainer.train(inputs.train_dataset_fn(32), num_train_steps=1000)
trainer.evaluate(inputs.eval_dataset_fn(8), pretraining.eval_fn, steps=100)
```

Each loop is one `tf.function` call running up to `iterations_per_loop`
steps of `strategy.run`; loops also end at checkpoint and log boundaries. On
every step the per-replica loss (divided by the number of replicas; for
float16 multiplied by a dynamic loss scale) is differentiated, the gradients
are summed over replicas, and the optimizer clips and applies them; then the
global step is incremented, as the original train op. With N replicas the
loss is the mean of the per-replica losses, as the original TPUEstimator's
CrossShardOptimizer did.

Checkpoints are `output_dir/model.ckpt-<step>` in the TF1 name-based format:
every model variable under its original name, the optimizer slots as
`<name>/adam_m` and `<name>/adam_v`, and `global_step` (int64), with the
`checkpoint` state file listing the last `keep_checkpoint_max`. Only the chief
writes them. `initialize` restores the latest one (model, slots and step), so
the same command resumes an interrupted run.
"""

import datetime
import os
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import file_io
from bert_tf.training import distribution
from bert_tf.training import progress

DTYPES = ("float32", "bfloat16", "float16")
_DTYPE_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16",
                   "float16": "mixed_float16"}
# Dynamic loss scaling for float16 (the Keras LossScaleOptimizer defaults).
_INITIAL_LOSS_SCALE = 2.0 ** 15
_LOSS_SCALE_GROWTH_STEPS = 2000


def set_dtype_policy(dtype):
  """Sets the global Keras dtype policy for `--dtype` (before building models).

  Args:
    dtype: "float32", "bfloat16" (mixed_bfloat16: float32 variables, bfloat16
      compute) or "float16" (mixed_float16, with loss scaling in `Trainer`).

  Raises:
    ValueError: for another value.
  """
  if dtype not in DTYPES:
    raise ValueError("Unknown --dtype=%r (expected one of %s)" %
                     (dtype, ", ".join(DTYPES)))
  keras.config.set_dtype_policy(_DTYPE_POLICIES[dtype])


class Trainer(object):
  """Trains and evaluates a model with named variables on a strategy."""

  def __init__(self, strategy, model_fn, loss_fn, output_dir,
               optimizer_fn=None, global_batch_size=None,
               iterations_per_loop=1000, save_checkpoints_steps=1000,
               keep_checkpoint_max=5, log_steps=100, dtype="float32",
               enable_xla=False):
    """Builds the model (and optimizer slots) under the strategy's scope.

    Args:
      strategy: a `tf.distribute.Strategy`.
      model_fn: function of no argument returning a Keras model whose
        variables exist after construction and are named as in the
        checkpoints.
      loss_fn: function (model, features, training) -> (scalar loss,
        dict of scalar Tensors to log).
      output_dir: where checkpoints, summaries and eval results go.
      optimizer_fn: function of no argument returning an optimizer of
        `optimization` (None for evaluation only).
      global_batch_size: examples per step over all replicas (for examples/s).
      iterations_per_loop: steps per `tf.function` call.
      save_checkpoints_steps: checkpoint every this many steps (and at the
        end of training).
      keep_checkpoint_max: checkpoints kept (0 or None: all).
      log_steps: log line and summaries every this many steps.
      dtype: "float32", "bfloat16" or "float16" (set the policy with
        `set_dtype_policy` before, so the model computes in it).
      enable_xla: compile the forward and backward pass with XLA.

    Raises:
      ValueError: for a non-positive step setting or unknown dtype.
    """
    for flag, value in (("iterations_per_loop", iterations_per_loop),
                        ("save_checkpoints_steps", save_checkpoints_steps),
                        ("log_steps", log_steps)):
      if value <= 0:
        raise ValueError("--%s must be positive, got %d" % (flag, value))
    if dtype not in DTYPES:
      raise ValueError("Unknown --dtype=%r (expected one of %s)" %
                       (dtype, ", ".join(DTYPES)))
    self.strategy = strategy
    self.loss_fn = loss_fn
    self.output_dir = output_dir
    self.global_batch_size = global_batch_size
    self.iterations_per_loop = iterations_per_loop
    self.save_checkpoints_steps = save_checkpoints_steps
    self.keep_checkpoint_max = keep_checkpoint_max
    self.log_steps = log_steps
    self.dtype = dtype
    self.enable_xla = enable_xla
    self.is_chief = distribution.is_chief(strategy)
    with strategy.scope():
      self.model = model_fn()
      self.global_step = tf.Variable(
          0, dtype=tf.int64, trainable=False, name="global_step",
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.optimizer = optimizer_fn() if optimizer_fn else None
      if self.optimizer is not None:
        self.optimizer.build(self.model.trainable_variables)
      self.loss_scale = tf.Variable(
          _INITIAL_LOSS_SCALE if dtype == "float16" else 1.0,
          trainable=False, name="loss_scale",
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.good_steps = tf.Variable(
          0, dtype=tf.int64, trainable=False, name="good_steps",
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self._train_loop = None
    self._summary_writer = None

  # ------------------------------------------------------------ checkpoints --

  def checkpoint_tensors(self):
    """Everything a checkpoint holds, by original name.

    Returns:
      dict: model variable names, `<name>/adam_m`, `<name>/adam_v` (when
      training) and `global_step` -> variable.
    """
    tensors = dict(checkpoints.variables_by_name(self.model))
    if self.optimizer is not None:
      tensors.update(self.optimizer.slot_variables())
    tensors["global_step"] = self.global_step
    return tensors

  def initialize(self, init_checkpoint=None):
    """Restores the latest checkpoint of `output_dir`, else `init_checkpoint`.

    A checkpoint of `output_dir` restores the model, the optimizer slots and
    the global step (resuming). `init_checkpoint` (a legacy or own checkpoint)
    only gives the model weights, as the original's `init_from_checkpoint`.

    Args:
      init_checkpoint: checkpoint prefix or directory, or None.

    Returns:
      The checkpoint prefix that was restored, or None (fresh weights).
    """
    latest = tf.train.latest_checkpoint(self.output_dir)
    if latest:
      reader = tf.train.load_checkpoint(latest)
      available = reader.get_variable_to_shape_map()
      for name, variable in self.checkpoint_tensors().items():
        if name not in available:
          raise ValueError("Checkpoint %s (to resume from) lacks %s; was it "
                           "written by another model or optimizer?" %
                           (latest, name))
        variable.assign(reader.get_tensor(name).astype(
            tf.as_dtype(variable.dtype).as_numpy_dtype))
      logging.info("Resumed from %s at global step %d", latest,
                   int(self.global_step.numpy()))
      return latest
    if init_checkpoint:
      report = checkpoints.load_checkpoint(self.model, init_checkpoint)
      logging.info("%s", report.summary())
      return report.checkpoint
    return None

  def save(self):
    """Writes `output_dir/model.ckpt-<global step>` (chief only).

    Returns:
      The checkpoint prefix (also on non-chief workers, which write nothing).
    """
    step = int(self.global_step.numpy())
    prefix = os.path.join(self.output_dir, "model.ckpt-%d" % step)
    if not self.is_chief:
      return prefix
    checkpoints.save_checkpoint(self.checkpoint_tensors(), prefix)
    state = tf.train.get_checkpoint_state(self.output_dir)
    kept = list(state.all_model_checkpoint_paths) if state else []
    kept = [p for p in kept if p != prefix] + [prefix]
    if self.keep_checkpoint_max:
      for old in kept[:-self.keep_checkpoint_max]:
        for path in tf.io.gfile.glob(old + ".*"):
          tf.io.gfile.remove(path)
      kept = kept[-self.keep_checkpoint_max:]
    _write_checkpoint_state(self.output_dir, kept)
    logging.info("Saved checkpoint %s", prefix)
    return prefix

  # --------------------------------------------------------------- training --

  def _gradients(self, features, loss_scale):
    """Loss and dense gradients of the scaled per-replica loss."""
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      loss, logs = self.loss_fn(self.model, features, True)
      scaled = loss / self.strategy.num_replicas_in_sync
      if self.dtype == "float16":
        scaled *= loss_scale
    grads = tape.gradient(scaled, variables)
    grads = [tf.convert_to_tensor(g) if g is not None else tf.zeros_like(v)
             for g, v in zip(grads, variables)]
    return grads, scaled, logs

  def _update_loss_scale(self, finite):
    """Halves the float16 loss scale on overflow, doubles it after 2000 steps."""
    grow = tf.logical_and(finite,
                          self.good_steps + 1 >= _LOSS_SCALE_GROWTH_STEPS)
    self.loss_scale.assign(tf.where(
        finite, tf.where(grow, self.loss_scale * 2.0, self.loss_scale),
        tf.maximum(self.loss_scale / 2.0, 1.0)))
    self.good_steps.assign(tf.where(finite & ~grow, self.good_steps + 1,
                                    tf.constant(0, tf.int64)))

  def _make_train_loop(self):
    """The `tf.function` running `num_steps` steps from a distributed iterator."""
    compute = tf.function(self._gradients, jit_compile=self.enable_xla)

    def replica_step(features):
      grads, scaled, logs = compute(features, self.loss_scale)
      return self._reduce_and_apply(grads, scaled, logs)

    @tf.function
    def train_step(iterator):
      logs = self.strategy.run(replica_step, args=(next(iterator),))
      self.global_step.assign_add(1)
      return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v,
                                      axis=None) for k, v in logs.items()}

    @tf.function
    def train_loop(iterator, num_steps):
      # The step is traced once, and called from the loop as a function.
      logs = train_step(iterator)
      for _ in tf.range(num_steps - 1):
        logs = train_step(iterator)
      return logs

    return train_loop

  def _reduce_and_apply(self, grads, scaled, logs):
    """Sums gradients over replicas, unscales them and applies them."""
    variables = self.model.trainable_variables
    num_replicas = self.strategy.num_replicas_in_sync
    replica = tf.distribute.get_replica_context()
    grads = replica.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    apply_if = None
    loss = scaled * num_replicas
    if self.dtype == "float16":
      grads = [g / self.loss_scale for g in grads]
      loss /= self.loss_scale
      apply_if = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                                for g in grads])
      self._update_loss_scale(apply_if)
    learning_rate = self.optimizer.apply_gradients(
        zip(grads, variables), self.global_step, apply_if=apply_if)
    return dict(logs, loss=loss, learning_rate=learning_rate)

  def train_iterator(self, dataset_fn):
    """A distributed iterator over `dataset_fn`'s data from the global step.

    Args:
      dataset_fn: function (input_context, start_step) -> dataset of
        per-replica batches (see `train`).

    Returns:
      An iterator for `run_steps`.
    """
    start = int(self.global_step.numpy())
    return iter(self.strategy.distribute_datasets_from_function(
        lambda context: dataset_fn(context, start)))

  def run_steps(self, iterator, num_steps):
    """Runs `num_steps` training steps in one `tf.function` call.

    No checkpoint, log or summary: `train` adds those.

    Args:
      iterator: from `train_iterator`.
      num_steps: steps to run (at least 1).

    Returns:
      dict of the last step's logged values (floats; mean over replicas).
    """
    if self._train_loop is None:
      self._train_loop = self._make_train_loop()
    logs = self._train_loop(iterator, tf.constant(num_steps, tf.int32))
    return {k: float(v) for k, v in logs.items()}

  def train(self, dataset_fn, num_train_steps):
    """Trains from the current global step to `num_train_steps`.

    Args:
      dataset_fn: function (input_context, start_step) -> dataset of
        per-replica batches of features; `start_step` is the global step the
        run starts from (for skipping what was already read).
      num_train_steps: the global step to stop at.

    Returns:
      dict of the last loop's logged values (floats), empty if there was
      nothing left to train.
    """
    if self.optimizer is None:
      raise ValueError("Trainer was built without an optimizer_fn")
    start = int(self.global_step.numpy())
    if start >= num_train_steps:
      logging.info("Global step %d already reaches num_train_steps=%d",
                   start, num_train_steps)
      return {}
    iterator = self.train_iterator(dataset_fn)
    if self.is_chief and self._summary_writer is None:
      self._summary_writer = tf.summary.create_file_writer(self.output_dir)
    step = start
    logs = {}
    started = time.time()
    loop_started, loop_start_step = started, start
    while step < num_train_steps:
      num_steps = min(self.iterations_per_loop, num_train_steps - step,
                      _to_next_multiple(step, self.save_checkpoints_steps),
                      _to_next_multiple(step, self.log_steps))
      logs = self.run_steps(iterator, num_steps)
      step = int(self.global_step.numpy())
      if step % self.log_steps == 0 or step == num_train_steps:
        now = time.time()
        self._log(step, num_train_steps, logs, now - loop_started,
                  step - loop_start_step, now - started, step - start)
        loop_started, loop_start_step = now, step
      if step % self.save_checkpoints_steps == 0 or step == num_train_steps:
        self.save()
    if self._summary_writer is not None:
      self._summary_writer.flush()
    return logs

  def _log(self, step, num_train_steps, logs, seconds, steps, total_seconds,
           total_steps):
    """Writes a log line and the summaries of the last loop(s)."""
    batch = self.global_batch_size or 0
    examples_per_second = batch * steps / seconds if seconds > 0 else 0.0
    eta = (total_seconds / total_steps * (num_train_steps - step)
           if total_steps else 0.0)
    logging.info(
        "step %d/%d  loss = %.6f  %s  examples/s = %.1f  ETA %s", step,
        num_train_steps, logs["loss"],
        "  ".join("%s = %.6g" % (k, v) for k, v in sorted(logs.items())
                  if k != "loss"),
        examples_per_second, datetime.timedelta(seconds=round(eta)))
    if self._summary_writer is not None:
      with self._summary_writer.as_default(step=step):
        for key, value in logs.items():
          tf.summary.scalar(key, value)
        tf.summary.scalar("examples_per_second", examples_per_second)

  # ------------------------------------------------------------- evaluation --

  def evaluate(self, dataset_fn, eval_fn, steps):
    """Accumulates ratio metrics over `steps` batches.

    Args:
      dataset_fn: function (input_context) -> dataset of per-replica
        batches, read in order.
      eval_fn: function (model, features) -> dict of name -> (numerator,
        denominator) scalars of one batch.
      steps: batches (over all replicas) to evaluate.

    Returns:
      dict: name -> numerator sum / denominator sum (numpy float32), plus
      `global_step` (the current global step, int64).
    """
    dataset = self.strategy.distribute_datasets_from_function(dataset_fn)
    iterator = iter(dataset)

    @tf.function
    def eval_step(iterator):
      sums = self.strategy.run(lambda f: eval_fn(self.model, f),
                               args=(next(iterator),))
      return tf.nest.map_structure(
          lambda t: self.strategy.reduce(tf.distribute.ReduceOp.SUM, t,
                                         axis=None), sums)

    totals = None
    log = progress.ProgressLog("Evaluation", total_batches=steps)
    for _ in range(steps):
      sums = eval_step(iterator)
      log.update()
      sums = {k: np.array([float(n), float(d)]) for k, (n, d) in sums.items()}
      totals = sums if totals is None else {k: totals[k] + sums[k]
                                            for k in totals}
    log.finish()
    results = {k: np.float32(n / d) if d else np.float32(0.0)
               for k, (n, d) in (totals or {}).items()}
    results["global_step"] = np.int64(self.global_step.numpy())
    return results


def _write_checkpoint_state(output_dir, prefixes):
  """Writes the `checkpoint` state file (the last prefix is the latest).

  Paths are written relative to `output_dir`, as Estimator did, so that the
  directory can be moved; the file is replaced atomically.
  """
  names = [os.path.basename(p) for p in prefixes]
  lines = ['model_checkpoint_path: "%s"' % names[-1]]
  lines += ['all_model_checkpoint_paths: "%s"' % n for n in names]
  path = os.path.join(output_dir, "checkpoint")
  with file_io.atomic_file(path) as f:
    f.write("\n".join(lines) + "\n")


def _to_next_multiple(step, every):
  """Steps from `step` to the next multiple of `every` (at least 1)."""
  return every - step % every
