"""Losses, logged values and eval metrics of pretraining, as the original.

The eval metrics are those of the original run_pretraining `metric_fn` over
all evaluated batches: `masked_lm_accuracy` and `masked_lm_loss` weighted by
`masked_lm_weights`, `next_sentence_accuracy` and `next_sentence_loss`
unweighted, and the Estimator's `loss` (mean of the batches' total loss).
Each metric is a ratio of two sums that `Trainer.evaluate` accumulates over
replicas and batches.
"""

import tensorflow as tf


def pretraining_loss(model, features, training):
  """The loss function of pretraining for `Trainer`.

  Args:
    model: a `BertPretrainer`.
    features: dict of a batch of pretraining features.
    training: whether dropout is active.

  Returns:
    (total_loss, logs): the original total loss (masked LM + next sentence)
    and a dict of scalars to log: `mlm_loss`, `nsp_loss`, `mlm_accuracy`,
    `nsp_accuracy`.
  """
  outputs = model(features, training=training)
  sums = _metric_sums(outputs, features)
  logs = {
      "mlm_loss": outputs["mlm_loss"],
      "nsp_loss": outputs["nsp_loss"],
      "mlm_accuracy": _ratio(sums["masked_lm_accuracy"]),
      "nsp_accuracy": _ratio(sums["next_sentence_accuracy"]),
  }
  return outputs["total_loss"], logs


def pretraining_eval_sums(model, features):
  """The eval function of pretraining for `Trainer.evaluate`.

  Args:
    model: a `BertPretrainer`.
    features: dict of a batch of pretraining features with labels.

  Returns:
    dict: metric name -> (numerator, denominator) float32 scalars of this
    batch, for `masked_lm_accuracy`, `masked_lm_loss`,
    `next_sentence_accuracy`, `next_sentence_loss` and `loss`.
  """
  outputs = model(features, training=False)
  sums = _metric_sums(outputs, features)
  sums["loss"] = (outputs["total_loss"], tf.constant(1.0))
  return sums


def _metric_sums(outputs, features):
  """Weighted sums of the original metric_fn for one batch."""
  mlm_predictions = tf.argmax(outputs["mlm_log_probs"], axis=-1,
                              output_type=tf.int32)  # [B*P]
  mlm_ids = tf.reshape(features["masked_lm_ids"], [-1])
  mlm_weights = tf.reshape(tf.cast(features["masked_lm_weights"], tf.float32),
                           [-1])
  mlm_correct = tf.cast(tf.equal(mlm_predictions, mlm_ids), tf.float32)
  nsp_predictions = tf.argmax(outputs["nsp_log_probs"], axis=-1,
                              output_type=tf.int32)  # [B]
  nsp_labels = tf.reshape(features["next_sentence_labels"], [-1])
  nsp_correct = tf.cast(tf.equal(nsp_predictions, nsp_labels), tf.float32)
  num_examples = tf.cast(tf.size(nsp_labels), tf.float32)
  total_weight = tf.reduce_sum(mlm_weights)
  return {
      "masked_lm_accuracy": (tf.reduce_sum(mlm_weights * mlm_correct),
                             total_weight),
      "masked_lm_loss": (tf.reduce_sum(
          mlm_weights * outputs["mlm_per_example_loss"]), total_weight),
      "next_sentence_accuracy": (tf.reduce_sum(nsp_correct), num_examples),
      "next_sentence_loss": (tf.reduce_sum(outputs["nsp_per_example_loss"]),
                             num_examples),
  }


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
