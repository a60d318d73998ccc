"""TUPE: untied positional attention (Ke, He and Liu, "Rethinking Positional
Encoding in Language Pre-training", ICLR 2021), as its official code defines it.

With `tupe` set in the config, no position vector is added to the word
embeddings. Instead one positional term per head is computed once per forward
pass and added to the attention logits of every layer:

  bias[n, i, j] = (LN(p_i) U_Q^n) . (LN(p_j) U_K^n) / sqrt(2 * d_head)

while each layer divides its word term Q K^T by sqrt(2 * d_head) as well
(`SelfAttention(scale_factor=2)`). [CLS] is untied: the row of [CLS] attending
to others holds one learned value per head, and so does the column of others
attending to [CLS]. As in the official code, the table has one row more than
positions: row 0 gives the [CLS]-to-others value (its own positional
correlation), row k + 1 is position k, and row 1's own correlation gives the
others-to-[CLS] value. TUPE-R (`tupe: "relative"`) adds a learned scalar per
head and per T5 relative-position bucket (bidirectional, `tupe_num_buckets`
buckets up to `tupe_max_distance`), with bucket `tupe_num_buckets / 2` (which
the bucket function never returns) for the [CLS] row and bucket
`tupe_num_buckets` for the [CLS] column.

Checkpoint names (scope `bert/encoder/tupe`, H = hidden_size, L =
max_position_embeddings, N = num_attention_heads):
  bert/encoder/tupe/position_embeddings      [L + 1, H]
  bert/encoder/tupe/LayerNorm/beta, gamma    [H]
  bert/encoder/tupe/query/kernel, bias       [H, H], [H]   (U_Q)
  bert/encoder/tupe/key/kernel, bias         [H, H], [H]   (U_K)
  bert/encoder/tupe/relative_attention_bias  [tupe_num_buckets + 1, N]
                                              (TUPE-R only)
A plain BERT checkpoint has none of them: loading one into a TUPE model reports
them as newly initialized, and its `bert/embeddings/position_embeddings` as
unused.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from bert_tf.modeling import embeddings
from bert_tf.modeling import layers


def relative_position_bucket(relative_position, num_buckets=32,
                             max_distance=128):
  """T5's bidirectional bucket of each relative position (key - query).

  Half of the buckets are for keys left of (or at) the query, half for keys to
  its right (offset by num_buckets / 2). In each half, distances below
  num_buckets / 4 have a bucket each; larger ones share logarithmically wider
  buckets up to `max_distance`, beyond which all fall in the last bucket. The
  logarithm is computed in float32 as in T5 and the official TUPE code.

  Args:
    relative_position: int array of key position minus query position.
    num_buckets: even int >= 4, buckets for both directions together.
    max_distance: int > num_buckets / 4, the distance of the last bucket.

  Returns:
    int64 array of the same shape, values in [0, num_buckets).
  """
  distance = -np.asarray(relative_position, np.int64)  # query - key
  half = num_buckets // 2
  offset = np.where(distance < 0, half, 0)
  distance = np.abs(distance)
  max_exact = half // 2
  ratio = np.maximum(distance, max_exact).astype(np.float32) / np.float32(
      max_exact)
  log_bucket = (np.log(ratio) / np.float32(math.log(max_distance / max_exact))
                * np.float32(half - max_exact))
  large = np.minimum(max_exact + log_bucket.astype(np.int64), half - 1)
  return offset + np.where(distance < max_exact, distance, large)


@keras.saving.register_keras_serializable(package="bert_tf")
class TupePositionBias(layers.ConfigSerializable, keras.layers.Layer):
  """The `bert/encoder/tupe` scope: TUPE's positional attention bias.

  Called on the encoder input [batch, S, hidden] (only its length S is
  read), returns the bias [1, N, S, S] that every layer adds to its attention
  logits.
  """

  def __init__(self, config, name="tupe", **kwargs):
    """Creates the layer.

    Args:
      config: `BertConfig` with `tupe` "absolute" or "relative".
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.num_heads = config.num_attention_heads
    self.size_per_head = config.attention_head_size
    self.layer_norm = layers.LayerNorm()
    self.query = layers.dense_layer(config.hidden_size,
                                    config.initializer_range, name="query")
    self.key = layers.dense_layer(config.hidden_size,
                                  config.initializer_range, name="key")
    self.relative = config.tupe == "relative"
    if self.relative:
      # Bucket of every key - query distance in [-(L - 1), L - 1].
      reach = config.max_position_embeddings - 1
      self.bucket_by_distance = tf.constant(relative_position_bucket(
          np.arange(-reach, reach + 1), config.tupe_num_buckets,
          config.tupe_max_distance), tf.int32)

  def build(self, input_shape=None):
    config = self.config
    init = layers.create_initializer(config.initializer_range)
    self.position_embeddings = self.add_weight(
        name="position_embeddings",
        shape=(config.max_position_embeddings + 1, config.hidden_size),
        initializer=init)
    self.layer_norm.build((None, config.hidden_size))
    self.query.build((None, config.hidden_size))
    self.key.build((None, config.hidden_size))
    if self.relative:
      self.relative_attention_bias = self.add_weight(
          name="relative_attention_bias",
          shape=(config.tupe_num_buckets + 1, self.num_heads),
          initializer=init)

  def _heads(self, x, rows):
    """[rows, N*H] -> [rows, N, H]."""
    return tf.reshape(x, [rows, self.num_heads, self.size_per_head])

  def call(self, x):
    """The positional attention bias for the sequences of `x`.

    Args:
      x: Tensor [batch, seq_length, ...]; seq_length at most
        max_position_embeddings.

    Returns:
      float Tensor [1, N, seq_length, seq_length].

    Raises:
      ValueError: (InvalidArgumentError in a graph) beyond
        max_position_embeddings.
    """
    static_len = x.shape[1]
    seq_length = static_len if static_len is not None else tf.shape(x)[1]
    checks = embeddings.check_seq_length(
        seq_length, self.config.max_position_embeddings,
        "Sequence length %s is longer than max_position_embeddings (%d) of "
        "the BERT config (the rows of TUPE's position table)")
    with tf.control_dependencies(checks):
      table = tf.slice(self.position_embeddings, [0, 0],
                       [seq_length + 1, -1])  # [S+1, H]
    table = self.layer_norm(table)  # [S+1, H]
    q = self._heads(self.query(table), seq_length + 1)  # [S+1, N, Hd]
    k = self._heads(self.key(table), seq_length + 1)  # [S+1, N, Hd]
    q *= 1.0 / math.sqrt(2.0 * self.size_per_head)
    bias = tf.einsum("fnh,tnh->nft", q, k)  # [N, S+1, S+1]
    cls_to_others = bias[:, 0, 0][:, None, None]  # [N, 1, 1]
    others_to_cls = bias[:, 1, 1][:, None, None]  # [N, 1, 1]
    bias = bias[:, 1:, 1:]  # [N, S, S]: row/column k + 1 is position k
    rows = tf.range(seq_length)[:, None]  # [S, 1] queries
    columns = tf.range(seq_length)[None, :]  # [1, S] keys
    bias = tf.where(columns == 0, others_to_cls, bias)
    bias = tf.where(rows == 0, cls_to_others, bias)
    if self.relative:
      bias += self._relative_bias(rows, columns)
    return bias[None]  # [1, N, S, S]

  def _relative_bias(self, rows, columns):
    """TUPE-R's bucketed bias [N, S, S] for query `rows` and key `columns`."""
    num_buckets = self.config.tupe_num_buckets
    reach = self.config.max_position_embeddings - 1
    buckets = tf.gather(self.bucket_by_distance,
                        columns - rows + reach)  # [S, S]
    buckets = tf.where(columns == 0, num_buckets, buckets)  # others to [CLS]
    buckets = tf.where(rows == 0, num_buckets // 2, buckets)  # [CLS] to others
    values = tf.gather(self.relative_attention_bias, buckets)  # [S, S, N]
    return tf.transpose(values, [2, 0, 1])
