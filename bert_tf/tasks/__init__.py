"""The tasks behind the root scripts: what a model is trained on and scored by.

`bert_tf.training.trainer.Trainer` knows no task; a task gives it
(Model Garden's pattern, as plain functions):

- a model function of no argument building the Keras model, whose variables
  carry the original names and whose heads return outputs only
  (log-probabilities, logits), never losses (`model_fn`);
- `loss_fn(model, features, training) -> (scalar loss, {name: scalar})`:
  runs the model and computes the loss from its outputs and the batch's
  labels, with the values to log;
- dataset functions, `(input_context, start_step) -> tf.data.Dataset` for
  `Trainer.train` and `input_context -> tf.data.Dataset` for
  `Trainer.evaluate`;
- for `Trainer.evaluate`, `eval_fn(model, features) -> {metric: (numerator,
  denominator)}` of one batch; a task that needs every example's outputs
  (classifier, SQuAD) runs `inference.predict_all` instead.

The tasks: `pretraining` (run_pretraining), `classifier` (run_classifier),
`squad` (run_squad), `transformer_xl_lm` (run_transformer_xl) and
`feature_extraction` (extract_features, inference only).
"""


def num_train_steps(num_examples, train_batch_size, num_train_epochs,
                    warmup_proportion):
  """The original step counts.

  Args:
    num_examples: training examples.
    train_batch_size: global batch size.
    num_train_epochs: epochs (float).
    warmup_proportion: fraction of the steps for warmup.

  Returns:
    (num_train_steps, num_warmup_steps) =
    (int(examples / batch * epochs), int(steps * warmup_proportion)).

  Raises:
    ValueError: if that gives no training step.
  """
  steps = int(num_examples / train_batch_size * num_train_epochs)
  if steps <= 0:
    raise ValueError(
        "%d training examples with --train_batch_size=%d and "
        "--num_train_epochs=%s give no training step" %
        (num_examples, train_batch_size, num_train_epochs))
  return steps, int(steps * warmup_proportion)
