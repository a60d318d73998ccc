"""Losses, logged values and eval metrics of pretraining, as the original.

The eval metrics are those of the original run_pretraining `metric_fn` over
all evaluated batches: `masked_lm_accuracy` and `masked_lm_loss` weighted by
`masked_lm_weights`, `next_sentence_accuracy` and `next_sentence_loss`
unweighted, and the Estimator's `loss` (mean of the batches' total loss).
Each metric is a ratio of two sums that `Trainer.evaluate` accumulates over
replicas and batches. A model without the next sentence head has no
`next_sentence_*` metrics; one with SpanBERT's span boundary head adds
`span_boundary_accuracy` and `span_boundary_loss`, weighted by its
`sbo_weights` as the masked LM metrics.
"""

import tensorflow as tf


def pretraining_loss(model, features, training):
  """The loss function of pretraining for `Trainer`.

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
  outputs = model(features, training=training)
  sums = _metric_sums(outputs, features)
  heads = [("mlm", "masked_lm_accuracy"), ("nsp", "next_sentence_accuracy"),
           ("sbo", "span_boundary_accuracy")]
  heads = [(prefix, metric) for prefix, metric in heads if metric in sums]
  logs = {prefix + "_loss": outputs[prefix + "_loss"] for prefix, _ in heads}
  logs.update((prefix + "_accuracy", _ratio(sums[metric]))
              for prefix, metric in heads)
  return outputs["total_loss"], logs


def pretraining_eval_sums(model, features):
  """The eval function of pretraining for `Trainer.evaluate`.

  Args:
    model: a `BertPretrainer`.
    features: dict of a batch of pretraining features with labels.

  Returns:
    dict: metric name -> (numerator, denominator) float32 scalars of this
    batch, for `masked_lm_accuracy`, `masked_lm_loss`, `loss`, and
    `next_sentence_accuracy`, `next_sentence_loss`, `span_boundary_accuracy`,
    `span_boundary_loss` for the heads the model has.
  """
  outputs = model(features, training=False)
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
  numerator, denominator = pair
  return tf.math.divide_no_nan(numerator, denominator)


def write_eval_results(path, results):
  """Writes `eval_results.txt` as the original: `key = value`, sorted keys.

  Args:
    path: output file.
    results: dict of metric name -> number.
  """
  with tf.io.gfile.GFile(path, "w") as writer:
    for key in sorted(results):
      writer.write("%s = %s\n" % (key, str(results[key])))


def read_eval_results(path):
  """Reads an `eval_results.txt` back into a dict of name -> float."""
  results = {}
  with tf.io.gfile.GFile(path) as reader:
    for line in reader:
      if " = " in line:
        key, value = line.rstrip("\n").split(" = ", 1)
        results[key] = float(value)
  return results
