"""`BertPretrainer`: `BertModel` with the `cls` heads and the original total loss."""

import keras
import tensorflow as tf

from bert_tf.modeling import heads
from bert_tf.modeling.encoder import BertModel


class BertPretrainer(keras.Model):
  """The model of the original run_pretraining.py: encoder + masked LM + NSP.

  Variables keep their original names: `bert/...` and `cls/...`.
  """

  def __init__(self, config, use_one_hot_embeddings=False,
               name="bert_pretrainer", **kwargs):
    """Creates the encoder (scope `bert`) and the heads (scope `cls`).

    Args:
      config: `BertConfig`.
      use_one_hot_embeddings: see `BertModel`.
      name: Keras name of this wrapper (not part of any variable name).
      **kwargs: passed to `keras.Model`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.bert = BertModel(config, use_one_hot_embeddings)
    self.heads = heads.PretrainingHeads(config, self.bert.get_embedding_table())
    self.heads.build()

  def call(self, features, training=None):
    """Runs the encoder and the heads; adds the losses when labels are given.

    Args:
      features: dict with `input_ids`, `input_mask`, `segment_ids`,
        `masked_lm_positions` [batch, P], and optionally the labels
        `masked_lm_ids` [batch, P], `masked_lm_weights` [batch, P],
        `next_sentence_labels` [batch] or [batch, 1].
      training: whether dropout is active.

    Returns:
      A dict with the `BertModel` outputs plus `mlm_log_probs` [batch*P, vocab]
      and `nsp_log_probs` [batch, 2]; with labels also `mlm_loss`,
      `mlm_per_example_loss`, `nsp_loss`, `nsp_per_example_loss` and
      `total_loss` = mlm_loss + nsp_loss.
    """
    outputs = dict(self.bert(features, training=training))
    mlm_log_probs, nsp_log_probs = self.heads(
        outputs["sequence_output"], outputs["pooled_output"],
        features["masked_lm_positions"])
    outputs["mlm_log_probs"] = mlm_log_probs
    outputs["nsp_log_probs"] = nsp_log_probs
    if "masked_lm_ids" in features:
      outputs["mlm_loss"], outputs["mlm_per_example_loss"] = (
          heads.masked_lm_loss(mlm_log_probs, features["masked_lm_ids"],
                               features["masked_lm_weights"]))
      outputs["nsp_loss"], outputs["nsp_per_example_loss"] = (
          heads.next_sentence_loss(nsp_log_probs,
                                   features["next_sentence_labels"]))
      outputs["total_loss"] = outputs["mlm_loss"] + outputs["nsp_loss"]
    return outputs
