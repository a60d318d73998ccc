"""Task models: `BertModel` plus the heads of the original scripts.

- `BertPretrainer`: masked LM + next sentence (run_pretraining.py), `bert/*`
  and `cls/*`; as an option SpanBERT's span boundary objective, with or
  without next sentence.
- `BertClassifier`: sentence (pair) classification (run_classifier.py),
  `bert/*` and the top-level `output_weights` / `output_bias`.
- `BertSquad`: span prediction (run_squad.py), `bert/*` and `cls/squad/*`.

Each builds the encoder and its head at construction, outside the task
model's own scope (its name is in no variable path), so the variable paths
are the original checkpoint names. Each is Keras-serializable: its config is
the `BertConfig` as a dict and its constructor arguments.
"""

import keras
import tensorflow as tf

from bert_tf.modeling import heads
from bert_tf.modeling import layers
from bert_tf.modeling import naming
from bert_tf.modeling.encoder import BertModel


@keras.saving.register_keras_serializable(package="bert_tf")
class BertPretrainer(layers.ConfigSerializable, keras.Model):
  """The model of the original run_pretraining.py: encoder + masked LM + NSP.

  With `span_boundary` it adds SpanBERT's span boundary objective
  (`cls/span_boundary`); without `next_sentence` it has no NSP head
  (SpanBERT's single segments).
  """

  def __init__(self, config, use_one_hot_embeddings=False, next_sentence=True,
               span_boundary=False, name="bert_pretrainer", **kwargs):
    """Creates the encoder (scope `bert`) and the heads (scope `cls`).

    Args:
      config: `BertConfig`.
      use_one_hot_embeddings: see `BertModel`.
      next_sentence: train the next sentence head (`cls/seq_relationship`);
        without it `bert/pooler` is frozen.
      span_boundary: train the span boundary head (`cls/span_boundary`).
      name: Keras name of this wrapper (not part of any variable name).
      **kwargs: passed to `keras.Model`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.use_one_hot_embeddings = use_one_hot_embeddings
    self.next_sentence = next_sentence
    self.span_boundary = span_boundary
    self.bert = BertModel(config, use_one_hot_embeddings)
    self.heads = heads.PretrainingHeads(
        config, self.bert.get_embedding_table(), next_sentence=next_sentence,
        span_boundary=span_boundary)
    self.heads.build()
    if not next_sentence:
      # Nothing reads the pooled output: `bert/pooler` stays in checkpoints
      # (for fine-tuning) but is not trained, so it gets no weight decay
      # either, as the original optimizer skips variables without gradient.
      self.bert.pooler.trainable = False

  def call(self, features, training=None):
    """Runs the encoder and the heads; adds the losses when labels are given.

    Args:
      features: dict with `input_ids`, `input_mask`, `segment_ids`,
        `masked_lm_positions` [batch, P], for the span boundary head
        `masked_lm_span_left`, `masked_lm_span_right`,
        `masked_lm_span_offset` [batch, P], and optionally the labels
        `masked_lm_ids` [batch, P], `masked_lm_weights` [batch, P],
        `next_sentence_labels` [batch] or [batch, 1] (with the NSP head).
      training: whether dropout is active.

    Returns:
      A dict with the `BertModel` outputs plus `mlm_log_probs` [batch*P, vocab],
      `nsp_log_probs` [batch, 2] (NSP head) and `sbo_log_probs`
      [batch*P, vocab] (SBO head); with labels also `mlm_loss`,
      `mlm_per_example_loss`, `nsp_loss`, `nsp_per_example_loss`,
      `sbo_loss`, `sbo_per_example_loss`, `sbo_weights` [batch, P] (of the
      heads that exist) and `total_loss`, their sum.
    """
    outputs = dict(self.bert(features, training=training))
    outputs.update(self.heads(outputs["sequence_output"],
                              outputs["pooled_output"], features))
    if "masked_lm_ids" in features:
      outputs["mlm_loss"], outputs["mlm_per_example_loss"] = (
          heads.masked_lm_loss(outputs["mlm_log_probs"],
                               features["masked_lm_ids"],
                               features["masked_lm_weights"]))
      total_loss = outputs["mlm_loss"]
      if "nsp_log_probs" in outputs:
        outputs["nsp_loss"], outputs["nsp_per_example_loss"] = (
            heads.next_sentence_loss(outputs["nsp_log_probs"],
                                     features["next_sentence_labels"]))
        total_loss += outputs["nsp_loss"]
      if "sbo_log_probs" in outputs:
        outputs["sbo_weights"] = heads.span_boundary_weights(
            features["masked_lm_weights"], features["masked_lm_span_offset"],
            self.config.span_boundary_max_span_length)
        outputs["sbo_loss"], outputs["sbo_per_example_loss"] = (
            heads.masked_lm_loss(outputs["sbo_log_probs"],
                                 features["masked_lm_ids"],
                                 outputs["sbo_weights"]))
        total_loss += outputs["sbo_loss"]
      outputs["total_loss"] = total_loss
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(use_one_hot_embeddings=self.use_one_hot_embeddings,
                  next_sentence=self.next_sentence,
                  span_boundary=self.span_boundary)
    return config


@keras.saving.register_keras_serializable(package="bert_tf")
class BertClassifier(layers.ConfigSerializable, keras.Model):
  """The model of the original run_classifier.py: pooled output -> labels."""

  def __init__(self, config, num_labels, use_one_hot_embeddings=False,
               name="bert_classifier", **kwargs):
    """Creates the encoder and the top-level `output_weights`/`output_bias`.

    Args:
      config: `BertConfig`.
      num_labels: number of classes.
      use_one_hot_embeddings: see `BertModel`.
      name: Keras name of this wrapper (not part of any variable name).
      **kwargs: passed to `keras.Model`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.num_labels = num_labels
    self.use_one_hot_embeddings = use_one_hot_embeddings
    self.bert = BertModel(config, use_one_hot_embeddings)
    self.head = heads.ClassifierHead(num_labels, config.hidden_size)
    self.head.build()

  def call(self, features, training=None):
    """Classifies a batch.

    Args:
      features: dict with `input_ids`, `input_mask`, `segment_ids`, and
        optionally `label_ids` [batch].
      training: whether dropout is active.

    Returns:
      A dict with `logits` [batch, num_labels], `probabilities`, and with
      labels `loss` and `per_example_loss` [batch].
    """
    pooled = self.bert(features, training=training)["pooled_output"]
    logits = self.head(pooled, training=training)
    outputs = {"logits": logits, "probabilities": tf.nn.softmax(logits)}
    if "label_ids" in features:
      outputs["loss"], outputs["per_example_loss"] = heads.classification_loss(
          logits, features["label_ids"])
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(num_labels=self.num_labels,
                  use_one_hot_embeddings=self.use_one_hot_embeddings)
    return config


@keras.saving.register_keras_serializable(package="bert_tf")
class BertSquad(layers.ConfigSerializable, keras.Model):
  """The model of the original run_squad.py: start and end logits per token."""

  def __init__(self, config, use_one_hot_embeddings=False, name="bert_squad",
               **kwargs):
    """Creates the encoder (scope `bert`) and the head (scope `cls/squad`).

    Args:
      config: `BertConfig`.
      use_one_hot_embeddings: see `BertModel`.
      name: Keras name of this wrapper (not part of any variable name).
      **kwargs: passed to `keras.Model`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.use_one_hot_embeddings = use_one_hot_embeddings
    self.bert = BertModel(config, use_one_hot_embeddings)
    self.head = naming.build(heads.SpanHead(config.hidden_size), path="cls")

  def call(self, features, training=None):
    """Scores every token as the start and the end of the answer.

    Args:
      features: dict with `input_ids`, `input_mask`, `segment_ids`, and
        optionally `start_positions`, `end_positions` [batch].
      training: whether dropout is active.

    Returns:
      A dict with `start_logits`, `end_logits` [batch, seq], and with
      positions the `loss` = (start loss + end loss) / 2.
    """
    sequence = self.bert(features, training=training)["sequence_output"]
    start_logits, end_logits = self.head(sequence)
    outputs = {"start_logits": start_logits, "end_logits": end_logits}
    if "start_positions" in features:
      outputs["loss"] = (
          heads.span_loss(start_logits, features["start_positions"]) +
          heads.span_loss(end_logits, features["end_positions"])) / 2.0
    return outputs

  def get_config(self):
    config = super().get_config()
    config["use_one_hot_embeddings"] = self.use_one_hot_embeddings
    return config
