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
