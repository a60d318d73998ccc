"""The heads of the original scripts, with their variable names; tasks compute the losses.

- `cls/predictions`: the masked-LM head. `transform/dense` (hidden_act) and
  `transform/LayerNorm`, then logits against the word embedding table (tied)
  plus `output_bias` [vocab_size].
- `cls/seq_relationship`: the next-sentence head, `output_weights` [2, hidden]
  and `output_bias` [2] on the pooled output.
- `cls/span_boundary`: SpanBERT's span boundary objective, each masked token
  predicted from the two tokens around its span and its position in the span
  (`SpanBoundaryHead`).

Fine-tuning heads: run_classifier's `output_weights` / `output_bias` at the
root of the checkpoint (`ClassifierHead`), run_squad's `cls/squad`
(`SpanHead`, which `BertSquad` builds under the scope `cls`), and ALBERT's
SQuAD v2.0 answer-verification head of its run_squad_v2 (`SquadV2Head`:
`start_logits/*`, `end_logits/*`, `answer_class/*` at the root).

Under a mixed precision policy the logits are computed in the compute dtype
and cast to float32 before the float32 `output_bias` (never autocast) is added:
log-probabilities and logits are float32.

The output layers of the masked LM and span boundary heads are the word
embeddings (tied weights): the table is a constructor argument that
`get_config` leaves out, and the model that owns the embeddings passes it.
"""

import keras
import tensorflow as tf

from bert_tf.modeling import layers
from bert_tf.modeling import naming


def gather_indexes(sequence_tensor, positions):
  """Gathers the vectors at `positions` from every sequence of the batch.

  Args:
    sequence_tensor: float Tensor [batch, seq, width].
    positions: int Tensor [batch, num_positions].

  Returns:
    float Tensor [batch * num_positions, width], sequence by sequence.
  """
  vectors = tf.gather(sequence_tensor, tf.cast(positions, tf.int32),
                      batch_dims=1)  # [B, P, W]
  return tf.reshape(vectors, [-1, tf.shape(sequence_tensor)[-1]])


def _tied_log_probs(layer, x, output_bias):
  """Log-probabilities over the vocabulary from the tied word embeddings.

  Args:
    layer: the head, holding `embedding_table` [vocab_size, width] or None.
    x: float Tensor [N, width] in the compute dtype.
    output_bias: float32 variable [vocab_size].

  Returns:
    float32 Tensor [N, vocab_size]: log_softmax(x E^T + output_bias).

  Raises:
    ValueError: if the head was made without its embedding table.
  """
  if layer.embedding_table is None:
    raise ValueError("%s %r has no embedding_table: its output layer is the "
                     "word embeddings of the model (pass "
                     "BertModel.get_embedding_table())" %
                     (type(layer).__name__, layer.name))
  logits = tf.matmul(x, tf.cast(layer.embedding_table, x.dtype),
                     transpose_b=True)
  logits = tf.cast(logits, tf.float32) + output_bias
  return tf.nn.log_softmax(logits, axis=-1)


@keras.saving.register_keras_serializable(package="bert_tf")
class MaskedLMHead(layers.ConfigSerializable, keras.layers.Layer):
  """The `cls/predictions` scope: masked-LM log-probabilities over the vocabulary."""

  def __init__(self, config, embedding_table=None, name="predictions",
               **kwargs):
    """Creates the head.

    Args:
      config: `BertConfig`.
      embedding_table: the word embedding variable [vocab_size, width] whose
        transpose is the output layer (tied weights; not in `get_config`).
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.embedding_table = embedding_table
    self.transform = HeadTransform(config)

  def build(self, input_shape=None):
    self.transform.build((None, self.config.hidden_size))
    self.output_bias = self.add_weight(
        name="output_bias", shape=(self.config.vocab_size,),
        initializer="zeros", autocast=False)

  def call(self, sequence_output, positions):
    """Log-probabilities of every vocabulary id at the masked positions.

    Args:
      sequence_output: float Tensor [batch, seq, hidden].
      positions: int Tensor [batch, max_predictions_per_seq].

    Returns:
      float32 Tensor [batch * max_predictions_per_seq, vocab_size].
    """
    x = self.transform(gather_indexes(sequence_output, positions))
    return _tied_log_probs(self, x, self.output_bias)


@keras.saving.register_keras_serializable(package="bert_tf")
class HeadTransform(layers.ConfigSerializable, keras.layers.Layer):
  """The `cls/predictions/transform` scope: dense (hidden_act) then LayerNorm."""

  config_arguments = ("units",)

  def __init__(self, config, units=None, name="transform", **kwargs):
    """Creates `dense` and `LayerNorm`.

    Args:
      config: `BertConfig` (activation, initializer range).
      units: output width; default `config.embedding_width`.
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.units = units or config.embedding_width
    self.dense = layers.dense_layer(
        self.units, config.initializer_range,
        activation=layers.get_activation(config.hidden_act))
    self.layer_norm = layers.LayerNorm()

  def build(self, input_shape):
    self.dense.build(input_shape)
    self.layer_norm.build((None, self.units))

  def call(self, x):
    """[N, in] -> [N, units]."""
    return self.layer_norm(self.dense(x))


@keras.saving.register_keras_serializable(package="bert_tf")
class SpanBoundaryHead(layers.ConfigSerializable, keras.layers.Layer):
  """The `cls/span_boundary` scope: SpanBERT's span boundary objective (SBO).

  For a masked token i of the span [s, e] it predicts the original token from
  h0 = [x(s-1); x(e+1); p(i-s)], x the sequence output and p the learned
  `position_embeddings` [span_boundary_max_span_length,
  span_boundary_position_embedding_size]:

    h1 = LayerNorm(act(h0 W0 + b0))   `transform_0`, width hidden_size
    h2 = LayerNorm(act(h1 W1 + b1))   `transform_1`, width embedding_width
    log_softmax(h2 E^T + output_bias) E the word embeddings (tied)

  as SpanBERT's pair target head (MLPWithLayerNorm); act is `hidden_act`.
  """

  def __init__(self, config, embedding_table=None, name="span_boundary",
               **kwargs):
    """Creates the head.

    Args:
      config: `BertConfig`.
      embedding_table: the word embedding variable [vocab_size, width]
        (tied output layer; not in `get_config`).
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.embedding_table = embedding_table
    self.transform_0 = HeadTransform(config, units=config.hidden_size,
                                     name="transform_0")
    self.transform_1 = HeadTransform(config, name="transform_1")

  def build(self, input_shape=None):
    config = self.config
    width = config.span_boundary_position_embedding_size
    self.position_embeddings = self.add_weight(
        name="position_embeddings",
        shape=(config.span_boundary_max_span_length, width),
        initializer=layers.create_initializer(config.initializer_range))
    self.transform_0.build((None, 2 * config.hidden_size + width))
    self.transform_1.build((None, config.hidden_size))
    self.output_bias = self.add_weight(
        name="output_bias", shape=(config.vocab_size,), initializer="zeros",
        autocast=False)

  def call(self, sequence_output, left, right, offset):
    """Log-probabilities of every vocabulary id at the masked positions.

    Args:
      sequence_output: float Tensor [batch, seq, hidden].
      left: int Tensor [batch, P], the position before each token's span.
      right: int Tensor [batch, P], the position after it.
      offset: int Tensor [batch, P], the token's position in its span;
        offsets past the table use its last row (the pretraining task's
        `span_boundary_weights` gives them no weight).

    Returns:
      float32 Tensor [batch * P, vocab_size].
    """
    rows = self.config.span_boundary_max_span_length
    offset = tf.clip_by_value(tf.reshape(tf.cast(offset, tf.int32), [-1]), 0,
                              rows - 1)
    positions = tf.gather(self.position_embeddings, offset)  # [B*P, width]
    h = tf.concat([gather_indexes(sequence_output, left),
                   gather_indexes(sequence_output, right),
                   tf.cast(positions, sequence_output.dtype)], axis=-1)
    h = self.transform_1(self.transform_0(h))
    return _tied_log_probs(self, h, self.output_bias)


@keras.saving.register_keras_serializable(package="bert_tf")
class NextSentenceHead(layers.ConfigSerializable, keras.layers.Layer):
  """The `cls/seq_relationship` scope: 2-way log-probabilities from the pooled output.

  Label 0 means "B follows A", 1 means "B is random" (ALBERT: 1 = swapped).
  """

  def __init__(self, config, name="seq_relationship", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config

  def build(self, input_shape=None):
    self.output_weights = self.add_weight(
        name="output_weights", shape=(2, self.config.hidden_size),
        initializer=layers.create_initializer(self.config.initializer_range))
    self.output_bias = self.add_weight(name="output_bias", shape=(2,),
                                       initializer="zeros", autocast=False)

  def call(self, pooled_output):
    """pooled_output [batch, hidden] -> float32 log-probs [batch, 2]."""
    logits = tf.matmul(pooled_output,
                       tf.cast(self.output_weights, pooled_output.dtype),
                       transpose_b=True)
    logits = tf.cast(logits, tf.float32) + self.output_bias
    return tf.nn.log_softmax(logits, axis=-1)


@keras.saving.register_keras_serializable(package="bert_tf")
class PretrainingHeads(layers.ConfigSerializable, keras.layers.Layer):
  """The `cls` scope: `predictions` (masked LM), `seq_relationship` (NSP), `span_boundary` (SBO).

  The original has the first two; SpanBERT's records without a next sentence
  task drop `seq_relationship` and add `span_boundary`.
  """

  config_arguments = ("next_sentence",)

  def __init__(self, config, embedding_table=None, next_sentence=True,
               span_boundary=False, name="cls", **kwargs):
    """Creates the heads.

    Args:
      config: `BertConfig`.
      embedding_table: the word embedding variable (tied output layers; not
        in `get_config`).
      next_sentence: build `seq_relationship`.
      span_boundary: build `span_boundary`.
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.next_sentence = next_sentence
    self.span_boundary_objective = span_boundary
    self.predictions = MaskedLMHead(config, embedding_table)
    self.seq_relationship = (NextSentenceHead(config) if next_sentence
                             else None)
    self.span_boundary = (SpanBoundaryHead(config, embedding_table)
                          if span_boundary else None)

  def build(self, input_shape=None):
    for head in (self.predictions, self.seq_relationship, self.span_boundary):
      if head is not None:
        head.build()

  def call(self, sequence_output, pooled_output, features):
    """Runs the heads.

    Args:
      sequence_output: float Tensor [batch, seq, hidden].
      pooled_output: float Tensor [batch, hidden].
      features: dict with `masked_lm_positions` [batch, P] and, for the span
        boundary head, `masked_lm_span_left`, `masked_lm_span_right`,
        `masked_lm_span_offset` [batch, P].

    Returns:
      A dict with `mlm_log_probs` [B*P, vocab], and `nsp_log_probs` [B, 2] and
      `sbo_log_probs` [B*P, vocab] for the heads that exist.
    """
    outputs = {"mlm_log_probs": self.predictions(
        sequence_output, features["masked_lm_positions"])}
    if self.seq_relationship is not None:
      outputs["nsp_log_probs"] = self.seq_relationship(pooled_output)
    if self.span_boundary is not None:
      outputs["sbo_log_probs"] = self.span_boundary(
          sequence_output, features["masked_lm_span_left"],
          features["masked_lm_span_right"], features["masked_lm_span_offset"])
    return outputs

  def get_config(self):
    config = super().get_config()
    # `self.span_boundary` is the head, the argument its presence.
    config["span_boundary"] = self.span_boundary_objective
    return config


@keras.saving.register_keras_serializable(package="bert_tf")
class ClassifierHead(layers.ArgumentsSerializable, keras.layers.Layer):
  """run_classifier's head: top-level `output_weights` [num_labels, hidden], `output_bias`.

  Dropout 0.1 on the pooled output while training, then a linear layer. The
  original creates the variables outside any variable scope: they are made
  at the root of the checkpoint (`naming.variable(path="/")`), not in this
  layer's scope, and are not autocast (the head casts them where needed).
  """

  config_arguments = ("num_labels", "hidden_size", "dropout_rate")

  def __init__(self, num_labels, hidden_size, dropout_rate=0.1,
               name="classifier_head", **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_labels = num_labels
    self.hidden_size = hidden_size
    self.dropout_rate = dropout_rate

  def build(self, input_shape=None):
    # The original uses stddev 0.02 here whatever the config's initializer_range.
    self.output_weights = naming.variable(
        "output_weights", (self.num_labels, self.hidden_size),
        keras.initializers.TruncatedNormal(stddev=0.02), path="/",
        autocast=False)
    self.output_bias = naming.variable(
        "output_bias", (self.num_labels,), keras.initializers.Zeros(),
        path="/", autocast=False)

  def call(self, pooled_output, training=None):
    """pooled_output [batch, hidden] -> float32 logits [batch, num_labels]."""
    x = layers.dropout(pooled_output, self.dropout_rate, training)
    logits = tf.matmul(x, tf.cast(self.output_weights, x.dtype),
                       transpose_b=True)
    return tf.cast(logits, tf.float32) + self.output_bias


@keras.saving.register_keras_serializable(package="bert_tf")
class SpanHead(layers.ArgumentsSerializable, keras.layers.Layer):
  """run_squad's head (scope `cls/squad`): start and end logits of every token.

  Variables `cls/squad/output_weights` [2, hidden] and `cls/squad/output_bias`
  [2] (`BertSquad` builds it under `cls`); no dropout, as the original.
  """

  config_arguments = ("hidden_size",)

  def __init__(self, hidden_size, name="squad", **kwargs):
    super().__init__(name=name, **kwargs)
    self.hidden_size = hidden_size

  def build(self, input_shape=None):
    self.output_weights = self.add_weight(
        name="output_weights", shape=(2, self.hidden_size),
        initializer=keras.initializers.TruncatedNormal(stddev=0.02))
    self.output_bias = self.add_weight(name="output_bias", shape=(2,),
                                       initializer="zeros", autocast=False)

  def call(self, sequence_output):
    """sequence_output [batch, seq, hidden] -> (start, end) float32 [batch, seq]."""
    logits = tf.einsum("bsh,kh->bsk", sequence_output,
                       tf.cast(self.output_weights, sequence_output.dtype))
    logits = tf.cast(logits, tf.float32) + self.output_bias  # [B, S, 2]
    return logits[:, :, 0], logits[:, :, 1]


# Added to the logits of positions that cannot hold an answer (ALBERT's
# `logits * (1 - p_mask) - 1e30 * p_mask`).
_MASKED_LOGIT = 1e30


@keras.saving.register_keras_serializable(package="bert_tf")
class SquadV2Head(layers.ConfigSerializable, keras.layers.Layer):
  """ALBERT's SQuAD v2.0 head (its run_squad_v2): a start-end beam and an answer class.

  google-research/albert's `squad_utils.create_v2_model` (XLNet's head), on
  the sequence output x [batch, seq, hidden] and ALBERT's `p_mask` (1 where
  no answer can be: question, [SEP], padding):

    start logits  s = x W_s + b_s        `start_logits/dense`, masked by
                  p_mask (-1e30), log-softmax over the sequence;
    end logits    for a start position i, over every position j:
                  e = LN(tanh([x_j; x_i] W_0 + b_0)) W_1 + b_1
                  `end_logits/dense_0` (2H -> H), `end_logits/LayerNorm`,
                  `end_logits/dense_1` (H -> 1), masked, log-softmax;
    answer class  c = tanh([sum_j softmax(s)_j x_j; x_0] A_0 + a_0) A_1
                  `answer_class/dense_0` (2H -> H, dropout after it while
                  training), `answer_class/dense_1` (H -> 1, no bias): the
                  logit of "no answer" from [CLS] and the start-weighted
                  states.

  With the gold start positions (training) i is the gold start; without
  (inference) i ranges over the `start_n_top` best starts and each keeps its
  `end_n_top` best ends. The variables sit at the root of the checkpoint
  (the original creates them outside any scope of the encoder), built with
  `naming.build`; all dense kernels are truncated normal with the config's
  `initializer_range`, biases zero. The logits are masked and normalized in
  float32 whatever the compute dtype.
  """

  config_arguments = ("start_n_top", "end_n_top", "dropout_prob")

  def __init__(self, config, start_n_top=5, end_n_top=5, dropout_prob=0.1,
               name="squad_v2", **kwargs):
    """Creates the layers.

    Args:
      config: `BertConfig` (hidden_size, initializer_range).
      start_n_top: starts kept at inference (ALBERT's `--start_n_top`).
      end_n_top: ends kept per start at inference (`--end_n_top`).
      dropout_prob: dropout on the answer class's hidden layer while
        training (ALBERT's `--dropout_prob`).
      name: Keras name (not part of any variable path).
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.start_n_top = start_n_top
    self.end_n_top = end_n_top
    self.dropout_prob = dropout_prob
    hidden, stddev = config.hidden_size, config.initializer_range
    self.start_dense = layers.dense_layer(1, stddev)
    self.end_dense_0 = layers.dense_layer(hidden, stddev, tf.tanh, "dense_0")
    self.end_layer_norm = layers.LayerNorm()
    self.end_dense_1 = layers.dense_layer(1, stddev, name="dense_1")
    self.answer_dense_0 = layers.dense_layer(hidden, stddev, tf.tanh,
                                             "dense_0")
    self.answer_dense_1 = keras.layers.Dense(
        1, use_bias=False, name="dense_1",
        kernel_initializer=layers.create_initializer(stddev))

  def build(self, input_shape=None):
    hidden = self.config.hidden_size
    naming.build(self.start_dense, (None, hidden), "/start_logits")
    for layer, width in ((self.end_dense_0, 2 * hidden),
                         (self.end_layer_norm, hidden),
                         (self.end_dense_1, hidden)):
      naming.build(layer, (None, width), "/end_logits")
    naming.build(self.answer_dense_0, (None, 2 * hidden), "/answer_class")
    naming.build(self.answer_dense_1, (None, hidden), "/answer_class")

  def _end_log_probs(self, sequence_output, start_states, p_mask):
    """End log-probabilities over the sequence for given start states.

    Args:
      sequence_output: float Tensor [batch, seq, hidden].
      start_states: float Tensor [batch, K, hidden], the states of K starts.
      p_mask: float32 Tensor [batch, seq].

    Returns:
      float32 Tensor [batch, K, seq].
    """
    k = tf.shape(start_states)[1]
    seq = tf.shape(sequence_output)[1]
    end_input = tf.concat([  # [B, K, S, 2H]
        tf.tile(sequence_output[:, None], [1, k, 1, 1]),
        tf.tile(start_states[:, :, None], [1, 1, seq, 1])], axis=-1)
    logits = self.end_dense_1(self.end_layer_norm(self.end_dense_0(end_input)))
    return tf.nn.log_softmax(
        _mask_logits(tf.cast(logits[..., 0], tf.float32), p_mask[:, None]),
        axis=-1)

  def call(self, sequence_output, p_mask, start_positions=None,
           training=None):
    """Runs the head.

    Args:
      sequence_output: float Tensor [batch, seq, hidden].
      p_mask: int or float Tensor [batch, seq], 1 where no answer can be.
      start_positions: int Tensor [batch] (or [batch, 1]) of gold starts
        (training), or None (inference: the beam).
      training: whether dropout is active.

    Returns:
      A dict with float32 `cls_logits` [batch] and, with `start_positions`,
      `start_log_probs` and `end_log_probs` [batch, seq]; without,
      `start_top_log_probs`, int32 `start_top_index` [batch, start_n_top],
      `end_top_log_probs`, int32 `end_top_index` [batch,
      start_n_top * end_n_top] (the ends of start i at i * end_n_top + j).
    """
    p_mask = tf.cast(p_mask, tf.float32)
    start_logits = tf.cast(self.start_dense(sequence_output)[..., 0],
                           tf.float32)
    start_logits = _mask_logits(start_logits, p_mask)  # masked
    start_log_probs = tf.nn.log_softmax(start_logits, axis=-1)
    if start_positions is not None:
      start_states = tf.gather(  # [B, 1, H]
          sequence_output,
          tf.reshape(tf.cast(start_positions, tf.int32), [-1, 1]),
          batch_dims=1)
      outputs = {"start_log_probs": start_log_probs,
                 "end_log_probs": self._end_log_probs(
                     sequence_output, start_states, p_mask)[:, 0]}
    else:
      start_top_log_probs, start_top_index = tf.nn.top_k(
          start_log_probs, k=self.start_n_top)
      start_states = tf.gather(sequence_output, start_top_index,
                               batch_dims=1)  # [B, K, H]
      end_top_log_probs, end_top_index = tf.nn.top_k(
          self._end_log_probs(sequence_output, start_states, p_mask),
          k=self.end_n_top)  # [B, K, E]
      beam = self.start_n_top * self.end_n_top
      outputs = {"start_top_log_probs": start_top_log_probs,
                 "start_top_index": start_top_index,
                 "end_top_log_probs": tf.reshape(end_top_log_probs,
                                                 [-1, beam]),
                 "end_top_index": tf.reshape(end_top_index, [-1, beam])}
    # The answer class sees [CLS] and the states weighted by the start
    # probabilities (softmax of the masked start logits).
    start_probs = tf.cast(tf.nn.softmax(start_logits, axis=-1),
                          sequence_output.dtype)
    start_feature = tf.einsum("bs,bsh->bh", start_probs, sequence_output)
    hidden = self.answer_dense_0(
        tf.concat([start_feature, sequence_output[:, 0]], axis=-1))
    hidden = layers.dropout(hidden, self.dropout_prob, training)
    outputs["cls_logits"] = tf.cast(self.answer_dense_1(hidden)[:, 0],
                                    tf.float32)
    return outputs


def _mask_logits(logits, p_mask):
  """ALBERT's masking of the positions that cannot hold an answer.

  Args:
    logits: float32 Tensor [..., seq].
    p_mask: float32 Tensor broadcastable to `logits`, 1 where masked.

  Returns:
    logits * (1 - p_mask) - 1e30 * p_mask, float32.
  """
  return logits * (1.0 - p_mask) - _MASKED_LOGIT * p_mask
