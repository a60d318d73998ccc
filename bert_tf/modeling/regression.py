"""Sentence (pair) regression (GLUE STS-B) with the classifier's variables.

`BertRegressor` is `BertClassifier` with `num_labels=1`: the same top-level
`output_weights` [1, hidden] and `output_bias` [1] and the same dropout on the
pooled output, so its checkpoints have the classifier's names. The single
logit is the prediction (the classifier task trains it with the mean squared
error).
"""

import keras

from bert_tf.modeling.models import BertClassifier
from bert_tf.modeling.models import BertTaskModel


@keras.saving.register_keras_serializable(package="bert_tf")
class BertRegressor(BertClassifier):
  """Pooled output -> one real value."""

  # Not `num_labels`: always 1.
  config_arguments = BertTaskModel.config_arguments

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
      features: dict with `input_ids`, `input_mask`, `segment_ids`.
      training: whether dropout is active.

    Returns:
      A dict with `logits` [batch, 1] and `predictions` [batch].
    """
    pooled = self.bert(features, training=training)["pooled_output"]
    logits = self.head(pooled, training=training)
    return {"logits": logits, "predictions": logits[:, 0]}
