"""Running a model over a whole dataset and collecting its outputs, in order.

Used by the eval and predict steps of run_classifier and run_squad, which need
every example's outputs (the original's `estimator.predict`), not only sums.
"""

import numpy as np
import tensorflow as tf

from bert_tf.training import progress


def predict_all(strategy, predict_fn, dataset, output_keys, feature_keys=()):
  """Runs `predict_fn(features)` on every batch of `dataset`.

  Logs progress lines while it runs (`progress.ProgressLog`).

  Args:
    strategy: the `tf.distribute.Strategy` the model was built under.
    predict_fn: function of a batch of features returning a dict of
      Tensors, e.g. `lambda f: model(f, training=False)`, or the model's
      outputs with the task's per-example loss.
    dataset: a finite `tf.data.Dataset` of global batches of features.
    output_keys: model outputs to collect.
    feature_keys: input features to collect beside them (e.g. `unique_ids`).

  Returns:
    dict key -> numpy array of all examples' values, in dataset order
    (batches concatenated along axis 0).
  """
  keys = list(output_keys) + list(feature_keys)
  distributed = strategy.experimental_distribute_dataset(dataset)

  def replica_fn(features):
    outputs = predict_fn(features)
    collected = {k: outputs[k] for k in output_keys}
    collected.update({k: features[k] for k in feature_keys})
    return collected

  @tf.function
  def step(features):
    per_replica = strategy.run(replica_fn, args=(features,))
    return {k: strategy.gather(per_replica[k], axis=0) for k in keys}

  collected = {k: [] for k in keys}
  log = progress.ProgressLog("Prediction")
  for features in distributed:
    values = step(features)
    for k in keys:
      collected[k].append(values[k].numpy())
    log.update(len(collected[keys[0]][-1]))
  log.finish()
  return {k: np.concatenate(v, axis=0) if v else np.zeros([0])
          for k, v in collected.items()}
