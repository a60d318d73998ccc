"""Language modelling with Transformer-XL on `Trainer`: memory, loss, optimizer.

The pieces `run_transformer_xl.py` hands to `bert_tf.training.trainer.Trainer`:

- `Memory`: the per-replica memory carried from one step to the next (one
  variable per layer, [mem_len, per-replica batch, d_model], starting at
  zeros), synchronized on read so that every replica keeps its own rows,
  as each GPU of the original `train_gpu.py` kept its own numpy memory;
- `lm_loss_fn` / `lm_eval_fn`: read the memory, run a segment (batches are
  batch-major from `lm_bytes.input_dataset`, transposed to time-major as
  the original model_fn does), write the new memory back;
- `create_optimizer`: the original optimizer, `tf.train.AdamOptimizer`
  (bias-corrected, epsilon 1e-8, no weight decay) on gradients clipped to a
  global norm of `clip`, with linear warmup then cosine decay to
  `min_lr_ratio` of the peak learning rate.
"""

import math

import tensorflow as tf

from bert_tf.training import optimization


class Memory(object):
  """The Transformer-XL memory of every replica, kept between steps.

  Create it under the strategy's scope. Inside `strategy.run`, `read` and
  `write` see this replica's copy; `reset` (outside) zeros every copy.
  """

  def __init__(self, config, per_replica_batch_size, name="mems"):
    """Creates zero memories.

    Args:
      config: `TransformerXLConfig` (n_layer, mem_len, d_model).
      per_replica_batch_size: rows of the stream each replica reads.
      name: prefix of the variable names (not written to checkpoints).
    """
    shape = [config.mem_len, per_replica_batch_size, config.d_model]
    self.variables = [
        tf.Variable(tf.zeros(shape), trainable=False,
                    name="%s_%d" % (name, i),
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        for i in range(config.n_layer)]

  def read(self):
    """Returns this replica's memories: list of [mem_len, batch, d_model]."""
    return [tf.identity(v) for v in self.variables]

  def write(self, new_mems):
    """Stores a segment's `new_mems` (list of [mem_len, batch, d_model])."""
    for variable, mem in zip(self.variables, new_mems):
      variable.assign(mem)

  def reset(self):
    """Sets every replica's memory to zeros (the start of a stream)."""
    for variable in self.variables:
      variable.assign(tf.zeros(variable.shape))


def _run_segment(model, memory, features, training):
  """Runs a batch-major (inputs, labels) segment with memory; returns nll."""
  inputs, labels = features
  outputs = model(tf.transpose(inputs), mems=memory.read(),
                  targets=tf.transpose(labels), training=training)
  memory.write(outputs["new_mems"])
  return outputs["nll"]  # [len, per-replica batch]


def lm_loss_fn(memory):
  """The training loss function of `Trainer` for a model and its memory.

  Args:
    memory: the training `Memory`.

  Returns:
    A function (model, (inputs, labels), training) -> (loss, logs): the mean
    negative log-likelihood of the segment (nats), and `bpc` (the same in
    bits) to log.
  """
  def loss_fn(model, features, training):
    loss = tf.reduce_mean(_run_segment(model, memory, features, training))
    return loss, {"bpc": loss / math.log(2)}

  return loss_fn


def lm_eval_fn(memory):
  """The eval function of `Trainer.evaluate` for a model and its memory.

  Args:
    memory: the evaluation `Memory` (reset it before a pass over the data).

  Returns:
    A function (model, (inputs, labels)) -> {"loss": (sum of the tokens'
    negative log-likelihoods, number of tokens)}.
  """
  def eval_fn(model, features):
    nll = _run_segment(model, memory, features, False)
    return {"loss": (tf.reduce_sum(nll), tf.cast(tf.size(nll), tf.float32))}

  return eval_fn


def eval_summary(results):
  """Adds perplexity and bits per character to `Trainer.evaluate` results.

  Args:
    results: dict with `loss` (mean nats per token) and `global_step`.

  Returns:
    dict with `loss`, `pplx`, `bpc` (floats) and `global_step`.
  """
  loss = float(results["loss"])
  return {"loss": loss, "pplx": math.exp(loss), "bpc": loss / math.log(2),
          "global_step": int(results["global_step"])}


def cosine_learning_rate_schedule(learning_rate, train_steps, warmup_steps,
                                  min_lr_ratio):
  """The original learning rate as a function of the global step.

  Args:
    learning_rate: peak learning rate.
    train_steps: total steps (the decay ends at `train_steps`).
    warmup_steps: steps of linear warmup from 0 (0: none).
    min_lr_ratio: the final learning rate as a fraction of the peak.

  Returns:
    A function of an integer step Tensor returning the float32 rate:
    `learning_rate * step / warmup_steps` during warmup, else
    `tf.compat.v1.train.cosine_decay(learning_rate, step - warmup_steps,
    train_steps - warmup_steps, alpha=min_lr_ratio)`.

  Raises:
    ValueError: if `train_steps` <= `warmup_steps` or a value is negative.
  """
  if warmup_steps < 0 or train_steps <= warmup_steps:
    raise ValueError("Need 0 <= warmup_steps < train_steps, got "
                     "warmup_steps=%d, train_steps=%d" %
                     (warmup_steps, train_steps))
  if not 0.0 <= min_lr_ratio <= 1.0:
    raise ValueError("min_lr_ratio must be in [0, 1], got %r" % min_lr_ratio)
  decay_steps = train_steps - warmup_steps

  def schedule(step):
    step = tf.cast(step, tf.float32)
    progress = tf.minimum(step - warmup_steps, decay_steps) / decay_steps
    cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
    decay_lr = learning_rate * ((1.0 - min_lr_ratio) * cosine + min_lr_ratio)
    if not warmup_steps:
      return decay_lr
    warmup_lr = step / warmup_steps * learning_rate
    return tf.where(step < warmup_steps, warmup_lr, decay_lr)

  return schedule


class Adam(optimization.AdamWeightDecay):
  """`tf.train.AdamOptimizer`: Adam with bias correction, as TXL trains.

  The step size at global step s (update number t = s + 1) is
  `lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`, applied to m / (sqrt(v) +
  epsilon). The slots are written as the TF1 optimizer names them,
  `<variable>/Adam` (m) and `<variable>/Adam_1` (v). The bias correction is
  computed from the global step (TF1 kept `beta1_power`/`beta2_power`
  variables instead; they are not written).
  """

  def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
               clip_norm=None, name="Adam"):
    """Creates the optimizer.

    Args:
      learning_rate: float or function of the global step.
      beta_1: decay of the first moment.
      beta_2: decay of the second moment.
      epsilon: added to sqrt(v).
      clip_norm: if set, gradients are clipped by this global norm.
      name: name of the module.
    """
    super().__init__(learning_rate, weight_decay_rate=0.0, beta_1=beta_1,
                     beta_2=beta_2, epsilon=epsilon,
                     exclude_from_weight_decay=(), clip_norm=clip_norm,
                     name=name)

  def slot_variables(self):
    """Returns dict: `<variable name>/Adam|Adam_1` -> slot tf.Variable."""
    result = {}
    for name, (m, v) in self._slots.items():
      result["%s/Adam" % name] = m
      result["%s/Adam_1" % name] = v
    return result

  def current_learning_rate(self, step):
    """The bias-corrected step size (float32) of the update at `step`."""
    t = tf.cast(step, tf.float32) + 1.0
    return (self.scheduled_learning_rate(step) *
            tf.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t))

  def scheduled_learning_rate(self, step):
    """The learning rate of the schedule (float32) at `step`."""
    return super().current_learning_rate(step)

  def apply_gradients(self, grads_and_vars, step, apply_if=None):
    """As `AdamWeightDecay.apply_gradients`; returns the scheduled rate."""
    super().apply_gradients(grads_and_vars, step, apply_if)
    return self.scheduled_learning_rate(step)


def create_optimizer(learning_rate, train_steps, warmup_steps, clip,
                     min_lr_ratio=0.004):
  """The optimizer of the original `train_gpu.py`.

  Args:
    learning_rate: peak learning rate (`--learning_rate`).
    train_steps: `--train_steps`.
    warmup_steps: `--warmup_steps`.
    clip: global norm the gradients are clipped to (`--clip`).
    min_lr_ratio: `--min_lr_ratio`.

  Returns:
    An `Adam` with the warmup + cosine schedule and clipping.
  """
  return Adam(cosine_learning_rate_schedule(learning_rate, train_steps,
                                            warmup_steps, min_lr_ratio),
              clip_norm=clip)
