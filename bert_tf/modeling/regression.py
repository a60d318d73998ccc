"""Sentence (pair) regression (GLUE STS-B) with the classifier's variables.

`BertRegressor` is `BertClassifier` with `num_labels=1`: the same top-level
`output_weights` [1, hidden] and `output_bias` [1] and the same dropout on the
pooled output, so its checkpoints have the classifier's names. The single
logit is the prediction, and the loss is the mean squared error.
"""

import keras
import tensorflow as tf

from bert_tf.modeling.models import BertClassifier


@keras.saving.register_keras_serializable(package="bert_tf")
class BertRegressor(BertClassifier):
  """Pooled output -> one real value, trained with the squared error."""

  def __init__(self, config, use_one_hot_embeddings=False,
               name="bert_regressor", **kwargs):
    """Creates the encoder and a one-output classifier head.

    Args:
      config: `BertConfig`.
      use_one_hot_embeddings: see `BertModel`.
      name: Keras name of this wrapper (not part of any variable name).
      **kwargs: passed to `keras.Model`.
    """
    super().__init__(config, 1, use_one_hot_embeddings, name=name, **kwargs)

  def call(self, features, training=None):
    """Scores a batch.

    Args:
      features: dict with `input_ids`, `input_mask`, `segment_ids`, and
        optionally float `label_ids` [batch].
      training: whether dropout is active.

    Returns:
      A dict with `logits` [batch, 1], `predictions` [batch], and with
      labels `per_example_loss` [batch] (squared error) and `loss` (its mean).
    """
    pooled = self.bert(features, training=training)["pooled_output"]
    logits = self.head(pooled, training=training)
    predictions = logits[:, 0]
    outputs = {"logits": logits, "predictions": predictions}
    if "label_ids" in features:
      labels = tf.cast(tf.reshape(features["label_ids"], [-1]), tf.float32)
      per_example_loss = tf.square(predictions - labels)
      outputs["per_example_loss"] = per_example_loss
      outputs["loss"] = tf.reduce_mean(per_example_loss)
    return outputs

  def get_config(self):
    config = super().get_config()
    del config["num_labels"]  # always 1
    return config
