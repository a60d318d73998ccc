"""The pretraining task of run_pretraining.py: inputs, model, losses, metrics.

The pieces `run_pretraining.py` hands to `bert_tf.training.trainer.Trainer`:

- `PretrainingInputs`: the TFRecords of create_pretraining_data.py, checked
  against the expected lengths, with the objectives they carry, and the
  `Trainer` dataset functions over them (`data.pretraining_dataset`);
- `model_fn`: `BertPretrainer` with the heads of those objectives;
- `compute_losses`: the original losses from the model's log-probabilities,
  masked LM (`masked_lm_loss`) + next sentence (`next_sentence_loss`; SOP
  for ALBERT's records) + SpanBERT's span boundary objective (the masked LM
  loss of its own log-probabilities, weighted by `span_boundary_weights`);
- `loss_fn` / `eval_fn`: the training loss with its logged values, and the
  eval metrics of the original run_pretraining `metric_fn` over all evaluated
  batches: `masked_lm_accuracy` and `masked_lm_loss` weighted by
  `masked_lm_weights`, `next_sentence_accuracy` and `next_sentence_loss`
  unweighted, and the Estimator's `loss` (mean of the batches' total loss).
  Each metric is a ratio of two sums that `Trainer.evaluate` accumulates over
  replicas and batches. A model without the next sentence head has no
  `next_sentence_*` metrics; one with the span boundary head adds
  `span_boundary_accuracy` and `span_boundary_loss`, weighted as its loss.
"""

import dataclasses

from absl import logging
import tensorflow as tf

from bert_tf.data import pretraining_dataset
from bert_tf.modeling import BertPretrainer

# (log prefix, eval metric prefix) of each head, in the order they are logged.
_HEADS = (("mlm", "masked_lm"), ("nsp", "next_sentence"),
          ("sbo", "span_boundary"))


# ----------------------------------------------------------------- inputs --


@dataclasses.dataclass(frozen=True)
class PretrainingInputs:
  """The pretraining records and how to read them.

  Attributes:
    input_files: list of TFRecord files.
    max_seq_length: length of their sequence features.
    max_predictions_per_seq: length of their `masked_lm_*` features.
    record_tasks: the objectives the records carry (see
      `pretraining_dataset.detect_tasks`).
    dynamic_masking: a `pretraining_dataset.DynamicMasking`, or None to use
      the stored masks.
  """
  input_files: list
  max_seq_length: int
  max_predictions_per_seq: int
  record_tasks: object
  dynamic_masking: object = None

  @classmethod
  def from_patterns(cls, input_file, max_seq_length, max_predictions_per_seq,
                    dynamic_masking=False, vocab_file=None,
                    spm_model_file=None, masked_lm_prob=0.15):
    """Expands `--input_file`, detects the objectives and checks the lengths.

    Args:
      input_file: comma-separated globs (`--input_file`).
      max_seq_length: expected length of the sequence features.
      max_predictions_per_seq: expected length of the `masked_lm_*` features.
      dynamic_masking: mask anew every time a record is read
        (`--dynamic_masking`).
      vocab_file: vocabulary of the special ids for dynamic masking.
      spm_model_file: SentencePiece model of the special ids, instead.
      masked_lm_prob: fraction of the tokens dynamic masking masks.

    Returns:
      A `PretrainingInputs`.

    Raises:
      ValueError: naming the file and feature, for records that do not match
        (see `pretraining_dataset.check_record_lengths`), or naming the
        vocabulary that lacks a special token.
    """
    input_files = pretraining_dataset.expand_input_patterns(input_file)
    logging.info("*** Input Files ***")
    for path in input_files:
      logging.info("  %s", path)
    record_tasks = pretraining_dataset.detect_tasks(input_files)
    logging.info("Pretraining tasks of the records: %s",
                 record_tasks.describe())
    pretraining_dataset.check_record_lengths(
        input_files, max_seq_length, max_predictions_per_seq, record_tasks)
    masking = None
    if dynamic_masking and spm_model_file:
      masking = pretraining_dataset.DynamicMasking.from_spm_model_file(
          spm_model_file, masked_lm_prob)
    elif dynamic_masking:
      masking = pretraining_dataset.DynamicMasking.from_vocab_file(
          vocab_file, masked_lm_prob)
    return cls(input_files, max_seq_length, max_predictions_per_seq,
               record_tasks, masking)

  def dataset(self, batch_size, is_training, input_context=None, seed=None,
              start_step=0, dynamic_padding=False):
    """One input pipeline's dataset (see `pretraining_dataset.pretraining_dataset`).

    Args:
      batch_size: global batch size.
      is_training: shuffle and repeat, or read in order.
      input_context: a `tf.distribute.InputContext`, or None.
      seed: seed of the shuffles and of dynamic masking.
      start_step: training steps already done (their records are skipped).
      dynamic_padding: cut each batch to its longest example.

    Returns:
      A `tf.data.Dataset` of dicts of per-replica batches.
    """
    return pretraining_dataset.pretraining_dataset(
        self.input_files, self.max_seq_length, self.max_predictions_per_seq,
        batch_size, is_training=is_training, input_context=input_context,
        seed=seed, start_step=start_step,
        dynamic_masking=self.dynamic_masking, tasks=self.record_tasks,
        dynamic_padding=dynamic_padding)

  def train_dataset_fn(self, batch_size, seed=None):
    """The `Trainer.train` dataset function: (input_context, start_step) -> dataset."""
    return lambda context, start_step: self.dataset(
        batch_size, True, context, seed=seed, start_step=start_step)

  def eval_dataset_fn(self, batch_size, seed=0, dynamic_padding=False):
    """The `Trainer.evaluate` dataset function: input_context -> dataset.

    With `dynamic_padding` each batch (in record order, so the Estimator's
    `loss` keeps its batches) is cut to its longest example: the same metrics.
    """
    return lambda context: self.dataset(batch_size, False, context, seed=seed,
                                        dynamic_padding=dynamic_padding)


def model_fn(config, record_tasks=None):
  """Returns the `Trainer` model_fn: a `BertPretrainer` for the records' objectives.

  Args:
    config: `BertConfig`.
    record_tasks: the records' objectives (`PretrainingInputs.record_tasks`);
      None for the original ones (masked LM + next sentence).

  Returns:
    A function of no argument building the model.
  """
  if record_tasks is None:
    return lambda: BertPretrainer(config)
  return lambda: BertPretrainer(config,
                                next_sentence=record_tasks.next_sentence,
                                span_boundary=record_tasks.span_boundary)


# ----------------------------------------------------------------- losses --


def masked_lm_loss(log_probs, label_ids, label_weights):
  """The original masked-LM loss: weighted mean of the per-prediction NLL.

  Args:
    log_probs: float Tensor [batch * max_predictions, vocab_size].
    label_ids: int Tensor [batch, max_predictions].
    label_weights: float Tensor [batch, max_predictions]; 0 marks padding.

  Returns:
    A tuple (loss scalar, per_example_loss [batch * max_predictions]) where
    loss = sum(weights * nll) / (sum(weights) + 1e-5).
  """
  label_ids = tf.reshape(label_ids, [-1])
  label_weights = tf.cast(tf.reshape(label_weights, [-1]), tf.float32)
  one_hot = tf.one_hot(label_ids, depth=tf.shape(log_probs)[-1],
                       dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(log_probs * one_hot, axis=[-1])
  numerator = tf.reduce_sum(label_weights * per_example_loss)
  denominator = tf.reduce_sum(label_weights) + 1e-5
  return numerator / denominator, per_example_loss


def next_sentence_loss(log_probs, labels):
  """The original next-sentence loss: mean NLL of the 2-way labels.

  Args:
    log_probs: float Tensor [batch, 2].
    labels: int Tensor [batch] or [batch, 1].

  Returns:
    A tuple (loss scalar, per_example_loss [batch]).
  """
  labels = tf.reshape(labels, [-1])
  one_hot = tf.one_hot(labels, depth=2, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot * log_probs, axis=-1)
  return tf.reduce_mean(per_example_loss), per_example_loss


def span_boundary_weights(masked_lm_weights, offset, max_span_length):
  """The weights of the SBO loss: the masked LM's, 0 past the position table.

  SpanBERT predicts at most `max_pair_targets` tokens of a span; here the
  table's rows (`span_boundary_max_span_length`) set that limit.

  Args:
    masked_lm_weights: float Tensor [batch, P].
    offset: int Tensor [batch, P], positions in the spans.
    max_span_length: rows of the position table.

  Returns:
    float32 Tensor [batch, P].
  """
  inside = tf.cast(tf.cast(offset, tf.int32) < max_span_length, tf.float32)
  return tf.cast(masked_lm_weights, tf.float32) * inside


def compute_losses(outputs, features, config):
  """The losses of the heads a `BertPretrainer` ran.

  Args:
    outputs: the model's outputs: `mlm_log_probs`, and `nsp_log_probs` /
      `sbo_log_probs` for the heads it has.
    features: dict with the labels `masked_lm_ids`, `masked_lm_weights`
      [batch, P], `next_sentence_labels` [batch] or [batch, 1] (NSP head)
      and `masked_lm_span_offset` [batch, P] (SBO head).
    config: the model's `BertConfig` (`span_boundary_max_span_length`).

  Returns:
    A dict with `mlm_loss`, `mlm_per_example_loss` [batch*P], for the heads
    that exist `nsp_loss`, `nsp_per_example_loss` [batch], `sbo_loss`,
    `sbo_per_example_loss` [batch*P], `sbo_weights` [batch, P], and
    `total_loss`, the sum of the head losses (float32 scalars).
  """
  losses = {}
  losses["mlm_loss"], losses["mlm_per_example_loss"] = masked_lm_loss(
      outputs["mlm_log_probs"], features["masked_lm_ids"],
      features["masked_lm_weights"])
  total_loss = losses["mlm_loss"]
  if "nsp_log_probs" in outputs:
    losses["nsp_loss"], losses["nsp_per_example_loss"] = next_sentence_loss(
        outputs["nsp_log_probs"], features["next_sentence_labels"])
    total_loss += losses["nsp_loss"]
  if "sbo_log_probs" in outputs:
    losses["sbo_weights"] = span_boundary_weights(
        features["masked_lm_weights"], features["masked_lm_span_offset"],
        config.span_boundary_max_span_length)
    losses["sbo_loss"], losses["sbo_per_example_loss"] = masked_lm_loss(
        outputs["sbo_log_probs"], features["masked_lm_ids"],
        losses["sbo_weights"])
    total_loss += losses["sbo_loss"]
  losses["total_loss"] = total_loss
  return losses


def run_with_losses(model, features, training):
  """Runs a `BertPretrainer` on a labelled batch and adds `compute_losses`.

  Args:
    model: a `BertPretrainer`.
    features: dict of a batch of pretraining features with labels.
    training: whether dropout is active.

  Returns:
    The model's outputs updated with the losses of `compute_losses`.
  """
  outputs = dict(model(features, training=training))
  outputs.update(compute_losses(outputs, features, model.config))
  return outputs


# ----------------------------------------------- Trainer's loss and eval --


def loss_fn(model, features, training):
  """The `Trainer` loss function of pretraining.

  Args:
    model: a `BertPretrainer`.
    features: dict of a batch of pretraining features.
    training: whether dropout is active.

  Returns:
    (total_loss, logs): the total loss (masked LM + next sentence in the
    original, + span boundary with SpanBERT's head) and a dict of scalars to
    log: `mlm_loss`, `mlm_accuracy`, and `nsp_loss`, `nsp_accuracy`,
    `sbo_loss`, `sbo_accuracy` for the heads the model has.
  """
  outputs = run_with_losses(model, features, training)
  sums = _metric_sums(outputs, features)
  logs = {}
  for prefix, metric in _HEADS:
    if metric + "_accuracy" in sums:
      logs[prefix + "_loss"] = outputs[prefix + "_loss"]
      logs[prefix + "_accuracy"] = _ratio(sums[metric + "_accuracy"])
  return outputs["total_loss"], logs


def eval_fn(model, features):
  """The `Trainer.evaluate` function of pretraining.

  Args:
    model: a `BertPretrainer`.
    features: dict of a batch of pretraining features with labels.

  Returns:
    dict: metric name -> (numerator, denominator) float32 scalars of this
    batch, for `masked_lm_accuracy`, `masked_lm_loss`, `loss`, and
    `next_sentence_accuracy`, `next_sentence_loss`, `span_boundary_accuracy`,
    `span_boundary_loss` for the heads the model has.
  """
  outputs = run_with_losses(model, features, False)
  sums = _metric_sums(outputs, features)
  sums["loss"] = (outputs["total_loss"], tf.constant(1.0))
  return sums


def _weighted_sums(log_probs, per_example_loss, label_ids, weights):
  """(accuracy, loss) sums of a masked LM style head, weighted."""
  predictions = tf.argmax(log_probs, axis=-1, output_type=tf.int32)  # [B*P]
  label_ids = tf.reshape(label_ids, [-1])
  weights = tf.reshape(tf.cast(weights, tf.float32), [-1])
  correct = tf.cast(tf.equal(predictions, label_ids), tf.float32)
  total_weight = tf.reduce_sum(weights)
  return ((tf.reduce_sum(weights * correct), total_weight),
          (tf.reduce_sum(weights * per_example_loss), total_weight))


def _metric_sums(outputs, features):
  """Weighted sums of the original metric_fn for one batch."""
  sums = {}
  sums["masked_lm_accuracy"], sums["masked_lm_loss"] = _weighted_sums(
      outputs["mlm_log_probs"], outputs["mlm_per_example_loss"],
      features["masked_lm_ids"], features["masked_lm_weights"])
  if "nsp_log_probs" in outputs:
    nsp_predictions = tf.argmax(outputs["nsp_log_probs"], axis=-1,
                                output_type=tf.int32)  # [B]
    nsp_labels = tf.reshape(features["next_sentence_labels"], [-1])
    nsp_correct = tf.cast(tf.equal(nsp_predictions, nsp_labels), tf.float32)
    num_examples = tf.cast(tf.size(nsp_labels), tf.float32)
    sums["next_sentence_accuracy"] = (tf.reduce_sum(nsp_correct),
                                      num_examples)
    sums["next_sentence_loss"] = (
        tf.reduce_sum(outputs["nsp_per_example_loss"]), num_examples)
  if "sbo_log_probs" in outputs:
    sums["span_boundary_accuracy"], sums["span_boundary_loss"] = (
        _weighted_sums(outputs["sbo_log_probs"],
                       outputs["sbo_per_example_loss"],
                       features["masked_lm_ids"], outputs["sbo_weights"]))
  return sums


def _ratio(pair):
  """numerator / denominator of a (numerator, denominator) pair, 0 for 0/0."""
  numerator, denominator = pair
  return tf.math.divide_no_nan(numerator, denominator)
