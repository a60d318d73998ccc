"""The `bert/embeddings` scope: word, token-type and position embeddings.

As the original `embedding_lookup` + `embedding_postprocessor`: the word vectors
(a gather, or a one-hot matmul with `use_one_hot_embeddings`), plus the
token-type vectors, plus the learned `position_embeddings` table cut to the
sequence length with `tf.slice` and broadcast as [1, seq_length, width]; then
LayerNorm and dropout.

Position options (config keys, absent = the original):
- `position_embedding_type`: "learned" (the original table), "sinusoidal" (the
  Transformer's fixed sin/cos table, no variable) or "none".
- `hierarchical_position_alpha` (e.g. 0.4): the learned table of n rows also
  serves positions n .. n*n - 1 through the hierarchical decomposition (see
  `hierarchical_position_table`); positions below n are the table's rows.
- `tupe`: no position vector is added here; TUPE's own table lives under
  `bert/encoder/tupe` and enters every layer's attention (see `tupe.py`).
"""

import numpy as np
import keras
import tensorflow as tf

from bert_tf.modeling import layers


def sinusoidal_position_table(seq_length, width):
  """The Transformer's fixed position table (sin on even, cos on odd columns).

  Args:
    seq_length: int or scalar int Tensor, number of positions.
    width: int, embedding width.

  Returns:
    float32 Tensor [seq_length, width] with
    table[p, 2i] = sin(p / 10000^(2i/width)), table[p, 2i+1] = cos(same).
  """
  positions = tf.cast(tf.range(seq_length), tf.float32)[:, None]  # [S, 1]
  even = np.arange(0, width, 2, dtype=np.float32)
  inv_freq = tf.constant(1.0 / (10000.0 ** (even / width)), tf.float32)
  angles = positions * inv_freq[None, :]  # [S, ceil(W/2)]
  table = tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1)  # [S, W/2, 2]
  return tf.reshape(table, [seq_length, -1])[:, :width]


def check_seq_length(seq_length, limit, message):
  """Fails clearly when a sequence is longer than `limit`.

  Args:
    seq_length: int or scalar int Tensor.
    limit: int, the longest length allowed.
    message: format string with a `%s` for the length and a `%d` for `limit`.

  Returns:
    A list of assertion ops to run first (empty for a Python int).

  Raises:
    ValueError: right away, for a Python int beyond `limit`.
  """
  if isinstance(seq_length, int):
    if seq_length > limit:
      raise ValueError(message % (seq_length, limit))
    return []
  return [tf.debugging.assert_less_equal(
      seq_length, limit, message=message % ("", limit))]


def hierarchical_position_table(table, seq_length, alpha):
  """Extends a learned position table of n rows to up to n*n positions.

  Position k = i*n + j (0 <= i, j < n) gets alpha*u[i] + (1-alpha)*u[j] with
  u = (table - alpha*table[0]) / (1 - alpha). For k < n (i = 0) the formula
  gives table[k] algebraically; those rows are taken from the table itself, so
  they equal it exactly. Gradients reach `table` through both branches.

  Args:
    table: float Tensor [n, width], the learned `position_embeddings`.
    seq_length: int or scalar int Tensor, at most n*n (not checked here).
    alpha: float in (0, 1), not 0.5 (0.4 by convention).

  Returns:
    float Tensor [seq_length, width].
  """
  n = tf.shape(table)[0]
  k = tf.range(seq_length)  # [S]
  i, j = k // n, k % n  # [S], [S]
  u = (table - alpha * table[:1]) / (1.0 - alpha)  # [n, W]
  decomposed = alpha * tf.gather(u, i) + (1.0 - alpha) * tf.gather(u, j)
  exact = tf.gather(table, j)  # [S, W]; row k itself where k < n
  return tf.where((k < n)[:, None], exact, decomposed)


@keras.saving.register_keras_serializable(package="bert_tf")
class BertEmbeddings(layers.ConfigSerializable, keras.layers.Layer):
  """Embeddings of the original model (variable scope `bert/embeddings`).

  Variables: `word_embeddings` [vocab_size, width], `token_type_embeddings`
  [type_vocab_size, width], `position_embeddings` [max_position_embeddings,
  width] (only for `position_embedding_type == "learned"` without `tupe`),
  `LayerNorm/*`.
  """

  config_arguments = ("use_one_hot_embeddings",)

  def __init__(self, config, use_one_hot_embeddings=False,
               name="embeddings", **kwargs):
    """Creates the layer.

    Args:
      config: `BertConfig`.
      use_one_hot_embeddings: look words up with a one-hot matmul (faster on
        TPU) instead of a gather. The numbers are the same.
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.use_one_hot_embeddings = use_one_hot_embeddings
    self.width = config.embedding_width
    self.layer_norm = layers.LayerNorm()

  def build(self, input_shape=None):
    # The tables are read in float32 (autocast=False) and the looked-up rows
    # cast to the compute dtype: under mixed precision this casts [batch, seq,
    # width] values instead of the whole [vocab_size, width] table every step.
    init = layers.create_initializer(self.config.initializer_range)
    self.word_embeddings = self.add_weight(
        name="word_embeddings", shape=(self.config.vocab_size, self.width),
        initializer=init, autocast=False)
    self.token_type_embeddings = self.add_weight(
        name="token_type_embeddings",
        shape=(self.config.type_vocab_size, self.width), initializer=init,
        autocast=False)
    if self._adds_learned_positions():
      self.position_embeddings = self.add_weight(
          name="position_embeddings",
          shape=(self.config.max_position_embeddings, self.width),
          initializer=init, autocast=False)
    self.layer_norm.build((None, None, self.width))

  def _adds_learned_positions(self):
    """Whether this layer owns and adds the learned `position_embeddings`."""
    return (self.config.position_embedding_type == "learned" and
            self.config.tupe is None)

  def _lookup(self, table, ids, depth):
    """Looks `ids` [B, S] up in `table` [depth, W]: gather or one-hot matmul.

    Returns:
      [B, S, W] in the compute dtype.
    """
    if self.use_one_hot_embeddings:
      one_hot = tf.one_hot(ids, depth=depth, dtype=table.dtype)
      rows = tf.einsum("bsv,vw->bsw", one_hot, table)
    else:
      rows = tf.gather(table, ids)
    return tf.cast(rows, self.compute_dtype)

  def _check_seq_length(self, seq_length):
    """Fails clearly when the sequence is longer than the positions reach."""
    if self.config.hierarchical_position_alpha is None:
      message = ("Sequence length %s is longer than max_position_embeddings "
                 "(%d) of the BERT config")
    else:
      message = ("Sequence length %%s is longer than %%d, the square of "
                 "max_position_embeddings (%d) that "
                 "hierarchical_position_alpha reaches, in the BERT config" %
                 self.config.max_position_embeddings)
    return check_seq_length(seq_length, self.config.max_seq_length_limit,
                            message)

  def position_table(self, seq_length):
    """The [seq_length, width] position vectors added to every sequence.

    Args:
      seq_length: int or scalar int Tensor.

    Returns:
      float Tensor [seq_length, width], or None for "none" and TUPE.

    Raises:
      ValueError: (InvalidArgumentError in a graph) when `seq_length` is
        beyond the learned table (or its square with hierarchical positions).
    """
    kind = self.config.position_embedding_type
    if self._adds_learned_positions():
      alpha = self.config.hierarchical_position_alpha
      checks = self._check_seq_length(seq_length)
      with tf.control_dependencies(checks):
        if alpha is None:
          return tf.slice(self.position_embeddings, [0, 0], [seq_length, -1])
        return hierarchical_position_table(self.position_embeddings,
                                           seq_length, alpha)
    if kind == "sinusoidal":
      return sinusoidal_position_table(seq_length, self.width)
    return None

  def call(self, input_ids, segment_ids, training=None):
    """Embeds a batch of token ids.

    Args:
      input_ids: int Tensor [batch, seq_length].
      segment_ids: int Tensor [batch, seq_length] (token types).
      training: whether dropout is active.

    Returns:
      float Tensor [batch, seq_length, width]: LayerNorm and dropout applied.
    """
    output = self._lookup(self.word_embeddings, input_ids,
                          self.config.vocab_size)
    output += self._lookup(self.token_type_embeddings, segment_ids,
                           self.config.type_vocab_size)
    static_len = input_ids.shape[1]
    seq_length = static_len if static_len is not None else tf.shape(
        input_ids)[1]
    positions = self.position_table(seq_length)
    if positions is not None:
      # [seq_length, width] -> [1, seq_length, width], broadcast over the batch.
      output += tf.reshape(tf.cast(positions, output.dtype),
                           [1, seq_length, self.width])
    output = self.layer_norm(output)
    return layers.dropout(output, self.config.hidden_dropout_prob, training)
