"""Language modelling with Transformer-XL on `Trainer`: memory and loss.

The pieces `run_transformer_xl.py` hands to `bert_tf.training.trainer.Trainer`:

- `Memory`: the per-replica memory carried from one step to the next (one
  float32 variable per layer, [mem_len, per-replica batch, d_model],
  starting at zeros), synchronized on read so that every replica keeps its
  own rows, as each GPU of the original `train_gpu.py` kept its own numpy
  memory;
- `token_nll`: the loss of the model's outputs, the negative log-likelihood
  of each target (the original's per-token loss, whose mean it trains on);
- `lm_loss_fn` / `lm_eval_fn`: read the memory, run a segment (batches are
  batch-major from `lm_bytes.input_dataset`, transposed to time-major as
  the original model_fn does), write the new memory back, and compute the
  loss from the log-probabilities the model returns;
- `eval_summary`: perplexity and bits per character of the eval loss.

Its optimizer is `optimization.create_transformer_xl_optimizer`.
"""

import math

import tensorflow as tf


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


def token_nll(outputs):
  """The negative log-likelihood of each target (nats).

  Args:
    outputs: the `TransformerXL` outputs of a call with `targets`.

  Returns:
    float32 Tensor [qlen, batch]: -log p(target).
  """
  return -outputs["target_log_probs"]


def _run_segment(model, memory, features, training):
  """Runs a batch-major (inputs, labels) segment with memory; returns nll."""
  inputs, labels = features
  outputs = model(tf.transpose(inputs), mems=memory.read(),
                  targets=tf.transpose(labels), training=training)
  memory.write(outputs["new_mems"])
  return token_nll(outputs)  # [len, per-replica batch]


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
