"""run_classifier's model, loss, evaluation and prediction, as the original.

The loss is the mean cross-entropy of the labels (`classification_loss`), for
the regression task STS-B the mean squared error (`regression_loss`).

Evaluation reports the original Estimator's keys: `eval_accuracy` and
`eval_loss` (over real examples only), `loss` (the mean over eval batches of
the batch mean loss, padding examples included, as the Estimator computed it)
and `global_step`; plus `eval_mcc` for CoLA, `eval_f1` for MRPC and QQP, and
for the regression task STS-B `eval_loss` (mean squared error),
`eval_pearson` and `eval_spearman` instead of the accuracy. Prediction writes
`test_results.tsv`: one line per real example, its class probabilities
separated by tabs (the predicted score for STS-B).
"""

import os

from absl import logging
import numpy as np
import tensorflow as tf

from bert_tf import file_io
from bert_tf.data import glue
from bert_tf.modeling import BertClassifier
from bert_tf.modeling.regression import BertRegressor
from bert_tf.tasks import classifier_metrics
from bert_tf.tasks import inference
from bert_tf.training import summaries

# Extra eval metrics by task (beside accuracy and loss).
TASK_METRICS = {
    "cola": ("mcc",),
    "mrpc": ("f1",),
    "qqp": ("f1",),
    "sts-b": ("pearson", "spearman"),
}


def model_fn(config, processor):
  """Returns the `Trainer` model_fn for the task's processor.

  Args:
    config: `BertConfig`.
    processor: the task's `DataProcessor`.

  Returns:
    A function building `BertRegressor` (regression) or `BertClassifier`.
  """
  if processor.is_regression:
    return lambda: BertRegressor(config)
  num_labels = len(processor.get_labels())
  return lambda: BertClassifier(config, num_labels)


def classification_loss(logits, labels):
  """run_classifier's loss: cross-entropy of integer labels.

  Args:
    logits: float Tensor [batch, num_labels].
    labels: int Tensor [batch].

  Returns:
    A tuple (mean loss scalar, per_example_loss [batch]).
  """
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  one_hot = tf.one_hot(tf.reshape(labels, [-1]), depth=tf.shape(logits)[-1],
                       dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot * log_probs, axis=-1)
  return tf.reduce_mean(per_example_loss), per_example_loss


def regression_loss(predictions, labels):
  """The regression loss (STS-B): squared error.

  Args:
    predictions: float Tensor [batch].
    labels: float Tensor [batch].

  Returns:
    A tuple (mean loss scalar, per_example_loss [batch]).
  """
  labels = tf.cast(tf.reshape(labels, [-1]), tf.float32)
  per_example_loss = tf.square(predictions - labels)
  return tf.reduce_mean(per_example_loss), per_example_loss


def run_with_loss(model, features, training):
  """Runs the model on a labelled batch and adds its loss.

  Args:
    model: a `BertClassifier` or `BertRegressor` (whose outputs have
      `predictions`).
    features: dict with the model inputs and `label_ids` [batch].
    training: whether dropout is active.

  Returns:
    The model's outputs plus `loss` (the batch mean) and `per_example_loss`
    [batch].
  """
  outputs = dict(model(features, training=training))
  if "predictions" in outputs:
    loss = regression_loss(outputs["predictions"], features["label_ids"])
  else:
    loss = classification_loss(outputs["logits"], features["label_ids"])
  outputs["loss"], outputs["per_example_loss"] = loss
  return outputs


def loss_fn(model, features, training):
  """The `Trainer` loss: (the batch mean loss of `run_with_loss`, {})."""
  return run_with_loss(model, features, training)["loss"], {}


def write_examples(examples, processor, max_seq_length, tokenizer,
                   output_file, log_examples=5):
  """Writes examples as the original fine-tuning TFRecords.

  Args:
    examples: list of `InputExample` / `PaddingInputExample`.
    processor: the task's `DataProcessor`.
    max_seq_length: padded length.
    tokenizer: a `FullTokenizer`.
    output_file: the TFRecord path.
    log_examples: how many of the first examples to log (the original: 5).
  """
  glue.file_based_convert_examples_to_features(
      examples, processor.get_labels(), max_seq_length, tokenizer,
      output_file, processor.is_regression, log_examples)


def _run(trainer, examples, processor, tokenizer, record_file, max_seq_length,
         batch_size, pad_to_batch, header, log_examples, dynamic_padding):
  """Writes examples to a TFRecord file and returns the model's outputs on it.

  Args:
    trainer: the `Trainer` holding the model and the strategy.
    examples: list of `InputExample`.
    processor: the task's `DataProcessor`.
    tokenizer: a `FullTokenizer`.
    record_file: the TFRecord path to write.
    max_seq_length: padded length.
    batch_size: batch size.
    pad_to_batch: pad with `PaddingInputExample`s to a batch multiple and
      drop nothing (as the original on TPU).
    header: the original's log line before the run.
    log_examples: how many of the first examples to log.
    dynamic_padding: run batches of similar lengths cut to their longest
      example (`data.dynamic_padding`); the outputs come back in order.

  Returns:
    dict of per-example outputs, in order.
  """
  num_actual = len(examples)
  if pad_to_batch:
    examples = glue.pad_examples(examples, batch_size)
  write_examples(examples, processor, max_seq_length, tokenizer, record_file,
                 log_examples)
  logging.info(header)
  logging.info("  Num examples = %d (%d actual, %d padding)", len(examples),
               num_actual, len(examples) - num_actual)
  logging.info("  Batch size = %d", batch_size)
  output_keys = ["per_example_loss"] + (
      ["predictions"] if processor.is_regression else ["logits",
                                                       "probabilities"])
  dataset = glue.file_based_dataset(
      record_file, max_seq_length, batch_size, is_training=False,
      drop_remainder=pad_to_batch, is_regression=processor.is_regression,
      dynamic_padding=dynamic_padding)
  return inference.predict_all(trainer.strategy,
                               lambda f: run_with_loss(trainer.model, f, False),
                               dataset, output_keys,
                               feature_keys=("label_ids", "is_real_example"))


def compute_eval_results(outputs, task_name, is_regression, batch_size,
                         global_step):
  """The eval_results.txt values from the per-example outputs.

  Args:
    outputs: dict of numpy arrays: `per_example_loss`, `label_ids`,
      `is_real_example`, and `logits` (classification) or `predictions`
      (regression).
    task_name: lower-case task name (selects the extra metrics).
    is_regression: whether the task is a regression.
    batch_size: the eval batch size (for the Estimator's `loss`).
    global_step: the evaluated checkpoint's step.

  Returns:
    dict: name -> numpy float32 (`global_step` int64).
  """
  weights = outputs["is_real_example"]
  labels = outputs["label_ids"]
  per_example_loss = outputs["per_example_loss"].astype(np.float32)
  batch_losses = [per_example_loss[i:i + batch_size].mean(dtype=np.float32)
                  for i in range(0, len(per_example_loss), batch_size)]
  results = {
      "eval_loss": classifier_metrics.weighted_mean(per_example_loss, weights),
      "loss": float(np.mean(batch_losses, dtype=np.float32)),
  }
  if is_regression:
    predictions = outputs["predictions"]
  else:
    predictions = np.argmax(outputs["logits"], axis=-1)
    results["eval_accuracy"] = classifier_metrics.accuracy(predictions,
                                                           labels, weights)
  for metric in TASK_METRICS.get(task_name, ()):
    fn = {"mcc": classifier_metrics.matthews_corrcoef,
          "f1": classifier_metrics.f1_score,
          "pearson": classifier_metrics.pearson_corrcoef,
          "spearman": classifier_metrics.spearman_corrcoef}[metric]
    results["eval_" + metric] = fn(predictions, labels, weights)
  results = {k: np.float32(v) for k, v in results.items()}
  results["global_step"] = np.int64(global_step)
  return results


def evaluate(trainer, examples, processor, task_name, tokenizer, output_dir,
             max_seq_length, eval_batch_size, pad_to_batch=False,
             log_examples=5, dynamic_padding=False):
  """Evaluates the trainer's model on the dev examples.

  Writes `eval.tf_record`, `eval_results.txt` (`key = value`, sorted) and the
  metrics as TensorBoard scalars under `output_dir/eval` at the global step
  (as the original's Estimator did).

  Args:
    trainer: a `Trainer` holding the restored or trained model.
    examples: the dev `InputExample`s.
    processor: the task's `DataProcessor`.
    task_name: the task name.
    tokenizer: a `FullTokenizer`.
    output_dir: where the files go.
    max_seq_length: padded length.
    eval_batch_size: batch size.
    pad_to_batch: pad with `PaddingInputExample`s to a batch multiple and
      drop nothing (as the original on TPU).
    log_examples: how many of the first examples to log.
    dynamic_padding: batches cut to their longest example; the same results
      (the Estimator's `loss` is still over the batches in input order).

  Returns:
    The results dict.
  """
  outputs = _run(trainer, examples, processor, tokenizer,
                 os.path.join(output_dir, "eval.tf_record"), max_seq_length,
                 eval_batch_size, pad_to_batch,
                 "***** Running evaluation *****", log_examples,
                 dynamic_padding)
  results = compute_eval_results(outputs, task_name.lower(),
                                 processor.is_regression, eval_batch_size,
                                 int(trainer.global_step.numpy()))
  output_eval_file = os.path.join(output_dir, "eval_results.txt")
  with file_io.atomic_file(output_eval_file) as writer:
    logging.info("***** Eval results *****")
    for key in sorted(results):
      logging.info("  %s = %s", key, str(results[key]))
      writer.write("%s = %s\n" % (key, str(results[key])))
  if trainer.is_chief:
    summaries.write_eval_scalars(output_dir, results)
  return results


def predict(trainer, examples, processor, tokenizer, output_dir,
            max_seq_length, predict_batch_size, pad_to_batch=False,
            log_examples=5, dynamic_padding=False):
  """Predicts the test examples and writes `test_results.tsv`.

  Args:
    trainer: a `Trainer` holding the restored or trained model.
    examples: the test `InputExample`s.
    processor: the task's `DataProcessor`.
    tokenizer: a `FullTokenizer`.
    output_dir: where `predict.tf_record` and `test_results.tsv` go.
    max_seq_length: padded length.
    predict_batch_size: batch size.
    pad_to_batch: pad to a batch multiple (as the original on TPU).
    log_examples: how many of the first examples to log.
    dynamic_padding: batches cut to their longest example; row i is still
      example i.

  Returns:
    numpy array of the written rows: probabilities [examples, num_labels],
    or scores [examples, 1] for regression.
  """
  outputs = _run(trainer, examples, processor, tokenizer,
                 os.path.join(output_dir, "predict.tf_record"),
                 max_seq_length, predict_batch_size, pad_to_batch,
                 "***** Running prediction*****", log_examples,
                 dynamic_padding)
  num_actual = len(examples)
  if processor.is_regression:
    rows = outputs["predictions"][:num_actual, None]
  else:
    rows = outputs["probabilities"][:num_actual]
  if len(rows) != num_actual:
    raise ValueError("Got %d predictions for %d examples" %
                     (len(rows), num_actual))
  output_predict_file = os.path.join(output_dir, "test_results.tsv")
  with file_io.atomic_file(output_predict_file) as writer:
    logging.info("***** Predict results *****")
    for row in rows:
      writer.write("\t".join(str(value) for value in row) + "\n")
  return rows
