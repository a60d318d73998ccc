"""Task models: `BertModel` plus the heads of the original scripts.

- `BertPretrainer`: masked LM + next sentence (run_pretraining.py), `bert/*`
  and `cls/*`; as an option SpanBERT's span boundary objective, with or
  without next sentence.
- `BertClassifier`: sentence (pair) classification (run_classifier.py),
  `bert/*` and the top-level `output_weights` / `output_bias`.
- `BertSquad`: span prediction (run_squad.py), `bert/*` and `cls/squad/*`.
- `BertSquadV2`: ALBERT's SQuAD v2.0 answer verification (its
  run_squad_v2.py), `bert/*` and `start_logits/*`, `end_logits/*`,
  `answer_class/*`.

Each is a `BertTaskModel` (the encoder, scope `bert`) that adds its head.
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


class BertTaskModel(layers.ConfigSerializable):
  """The encoder under its original scope `bert`, for a task model to add a head.

  Mixed in before `keras.Model` (not a model of its own): a task model builds
  its head in its constructor after this one, and adds its own constructor
  arguments to `config_arguments` (`layers.ArgumentsSerializable`).

  A task model is called on `features`, a dict with `input_ids`,
  `input_mask`, `segment_ids` [batch, seq] and what its head reads, and
  `training` (whether dropout is active). It returns a dict of outputs; labels
  are not read, the task (`bert_tf.tasks`) computes the loss from the outputs.
  """

  config_arguments = ("use_one_hot_embeddings",)

  def __init__(self, config, use_one_hot_embeddings=False, **kwargs):
    """Creates the encoder (scope `bert`).

    Args:
      config: `BertConfig`.
      use_one_hot_embeddings: see `BertModel`.
      **kwargs: passed to `keras.Model` (`name`: the Keras name of the task
        model, not part of any variable name).
    """
    super().__init__(**kwargs)
    self.config = config
    self.use_one_hot_embeddings = use_one_hot_embeddings
    self.bert = BertModel(config, use_one_hot_embeddings)


@keras.saving.register_keras_serializable(package="bert_tf")
class BertPretrainer(BertTaskModel, keras.Model):
  """The model of the original run_pretraining.py: encoder + masked LM + NSP.

  With `span_boundary` it adds SpanBERT's span boundary objective
  (`cls/span_boundary`); without `next_sentence` it has no NSP head
  (SpanBERT's single segments).
  """

  config_arguments = BertTaskModel.config_arguments + ("next_sentence",
                                                     "span_boundary")

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
    super().__init__(config, use_one_hot_embeddings, name=name, **kwargs)
    self.next_sentence = next_sentence
    self.span_boundary = span_boundary
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
    """Runs the encoder and the heads.

    Args:
      features: dict with `input_ids`, `input_mask`, `segment_ids`,
        `masked_lm_positions` [batch, P], and for the span boundary head
        `masked_lm_span_left`, `masked_lm_span_right`,
        `masked_lm_span_offset` [batch, P]. Labels are not read: the
        pretraining task computes the losses
        (`bert_tf.tasks.pretraining.compute_losses`).
      training: whether dropout is active.

    Returns:
      A dict with the `BertModel` outputs plus `mlm_log_probs` [batch*P, vocab],
      `nsp_log_probs` [batch, 2] (NSP head) and `sbo_log_probs`
      [batch*P, vocab] (SBO head).
    """
    outputs = dict(self.bert(features, training=training))
    outputs.update(self.heads(outputs["sequence_output"],
                              outputs["pooled_output"], features))
    return outputs


@keras.saving.register_keras_serializable(package="bert_tf")
class BertClassifier(BertTaskModel, keras.Model):
  """The model of the original run_classifier.py: pooled output -> labels."""

  config_arguments = BertTaskModel.config_arguments + ("num_labels",)

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
    super().__init__(config, use_one_hot_embeddings, name=name, **kwargs)
    self.num_labels = num_labels
    self.head = heads.ClassifierHead(num_labels, config.hidden_size)
    self.head.build()

  def call(self, features, training=None):
    """Classifies a batch (inputs: see `BertTaskModel`).

    Returns:
      A dict with `logits` [batch, num_labels] and `probabilities`.
    """
    pooled = self.bert(features, training=training)["pooled_output"]
    logits = self.head(pooled, training=training)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits)}


@keras.saving.register_keras_serializable(package="bert_tf")
class BertSquad(BertTaskModel, keras.Model):
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
    super().__init__(config, use_one_hot_embeddings, name=name, **kwargs)
    self.head = naming.build(heads.SpanHead(config.hidden_size), path="cls")

  def call(self, features, training=None):
    """Scores of each token as the start and as the end of the answer.

    Returns:
      A dict with `start_logits`, `end_logits` [batch, seq] (inputs: see
      `BertTaskModel`).
    """
    sequence = self.bert(features, training=training)["sequence_output"]
    start_logits, end_logits = self.head(sequence)
    return {"start_logits": start_logits, "end_logits": end_logits}


@keras.saving.register_keras_serializable(package="bert_tf")
class BertSquadV2(BertTaskModel, keras.Model):
  """The model of ALBERT's run_squad_v2.py: a start-end beam and an answer class."""

  config_arguments = BertTaskModel.config_arguments + (
      "start_n_top", "end_n_top", "dropout_prob")

  def __init__(self, config, start_n_top=5, end_n_top=5, dropout_prob=0.1,
               use_one_hot_embeddings=False, name="bert_squad_v2", **kwargs):
    """Creates the encoder (scope `bert`) and `heads.SquadV2Head` (root scopes).

    Args:
      config: `BertConfig` (ALBERT's or BERT's).
      start_n_top, end_n_top, dropout_prob: see `heads.SquadV2Head`.
      use_one_hot_embeddings: see `BertModel`.
      name: Keras name of this wrapper (not part of any variable name).
      **kwargs: passed to `keras.Model`.
    """
    super().__init__(config, use_one_hot_embeddings, name=name, **kwargs)
    self.start_n_top = start_n_top
    self.end_n_top = end_n_top
    self.dropout_prob = dropout_prob
    self.head = heads.SquadV2Head(config, start_n_top, end_n_top,
                                  dropout_prob)
    self.head.build()

  def call(self, features, training=None):
    """Scores starts, ends and answerability.

    Args:
      features: dict with `input_ids`, `input_mask`, `segment_ids`,
        ALBERT's `p_mask` [batch, seq], and for training `start_positions`
        [batch] (the end layer then reads the gold start, as ALBERT's
        training graph; without it, the top starts).
      training: whether dropout is active.

    Returns:
      The `heads.SquadV2Head` outputs.
    """
    sequence = self.bert(features, training=training)["sequence_output"]
    return self.head(sequence, features["p_mask"],
                     features.get("start_positions"), training=training)
