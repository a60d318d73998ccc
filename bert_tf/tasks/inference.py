"""Running a model over a whole dataset and collecting its outputs, in order.

Used by the eval and predict steps of run_classifier and run_squad, which need
every example's outputs (the original's `estimator.predict`), not only sums.
Batches of dynamic padding (`data.dynamic_padding`: sorted by length, cut to
their longest example) are traced once with a free sequence length, their
sequence outputs padded back to the records' length, and every output put
back in input order by `example_index`.
"""

import numpy as np
import tensorflow as tf

from bert_tf.data import dynamic_padding

# The value of sequence outputs (logits) at positions cut off by dynamic
# padding: below every computed logit, so never among the best.
CUT_OFF_LOGIT = -np.inf


def predict_all(strategy, predict_fn, dataset, output_keys, feature_keys=(),
                sequence_outputs=(), seq_length=None):
  """Runs `predict_fn(features)` on every batch of `dataset`.

  Args:
    strategy: the `tf.distribute.Strategy` the model was built under.
    predict_fn: function of a batch of features returning a dict of
      Tensors, e.g. `lambda f: model(f, training=False)`, or the model's
      outputs with the task's per-example loss.
    dataset: a finite `tf.data.Dataset` of global batches of features, padded
      to one length, or of dynamic padding (with `example_index`).
    output_keys: model outputs to collect.
    feature_keys: input features to collect beside them (e.g. `unique_ids`).
    sequence_outputs: the output keys with a sequence axis (axis 1), e.g.
      SQuAD's logits: under dynamic padding padded back to `seq_length` with
      `CUT_OFF_LOGIT`.
    seq_length: the records' length (needed with `sequence_outputs`).

  Returns:
    dict key -> numpy array of all examples' values, in dataset order
    (batches concatenated along axis 0), under dynamic padding in input
    order.
  """
  dynamic = dynamic_padding.EXAMPLE_INDEX in dataset.element_spec
  feature_keys = list(feature_keys) + (
      [dynamic_padding.EXAMPLE_INDEX] if dynamic else [])
  keys = list(output_keys) + feature_keys
  distributed = strategy.experimental_distribute_dataset(dataset)

  def replica_fn(features):
    outputs = predict_fn(features)
    collected = {k: outputs[k] for k in output_keys}
    if dynamic:
      for k in sequence_outputs:
        value = collected[k]
        collected[k] = tf.pad(
            value, [[0, 0], [0, seq_length - tf.shape(value)[1]]],
            constant_values=CUT_OFF_LOGIT)
    collected.update({k: features[k] for k in feature_keys})
    return collected

  def step(features):
    per_replica = strategy.run(replica_fn, args=(features,))
    return {k: strategy.gather(per_replica[k], axis=0) for k in keys}

  # Under dynamic padding one trace serves every length.
  step = tf.function(step, input_signature=(
      [distributed.element_spec] if dynamic else None))
  collected = {k: [] for k in keys}
  for features in distributed:
    values = step(features)
    for k in keys:
      collected[k].append(values[k].numpy())
  results = {k: np.concatenate(v, axis=0) if v else np.zeros([0])
             for k, v in collected.items()}
  if dynamic:
    order = np.argsort(results.pop(dynamic_padding.EXAMPLE_INDEX),
                       kind="stable")
    results = {k: v[order] for k, v in results.items()}
  return results
