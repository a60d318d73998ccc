"""Multi-head attention of the original model (the `attention/self` scope).

The logits are Q K^T / sqrt(size_per_head) plus the original mask adder:
(1 - mask) * -10000 for every masked key position; softmax; dropout on the
probabilities; the context is the weighted sum of the values, heads concatenated.

Options, all off by default (the original numbers):
- an additive `attention_bias` [1 or batch, heads, from_seq, to_seq] added to the
  logits before the mask (TUPE's positional term, computed once per forward
  pass and shared by every layer), and `scale_factor` (2 for TUPE: the word
  term is divided by sqrt(2 * size_per_head));
- `chunk_size` (config `attention_chunk_size`): the queries are processed
  `chunk_size` at a time in a `tf.while_loop`, so the logits held at once are
  [batch, heads, chunk_size, to_seq] instead of [batch, heads, from_seq,
  to_seq]. Each query row's softmax is unchanged, so the outputs equal full
  attention (to float round-off); memory becomes linear in the sequence length
  for a fixed chunk size.
"""

import math

import keras
import tensorflow as tf

from bert_tf.modeling import layers


def create_attention_mask_from_input_mask(input_mask, dtype=tf.float32):
  """Turns a [batch, to_seq] padding mask into a broadcastable attention mask.

  The original builds [batch, from_seq, to_seq] as ones * mask; this returns the
  same values as [batch, 1, 1, to_seq], which broadcasts over heads and queries.

  Args:
    input_mask: int Tensor [batch, to_seq], 1 for real tokens, 0 for padding.
    dtype: float dtype of the result.

  Returns:
    Tensor [batch, 1, 1, to_seq] of 0.0 / 1.0.
  """
  return tf.cast(input_mask, dtype)[:, None, None, :]


def attention_mask_adder(attention_mask):
  """The original's additive mask: 0 where attending, -10000 where masked.

  Args:
    attention_mask: float Tensor of 0.0 / 1.0, any shape broadcastable to the
      attention logits [batch, heads, from_seq, to_seq].

  Returns:
    Tensor of the same shape: (1 - mask) * -10000.
  """
  return (1.0 - attention_mask) * -10000.0


@keras.saving.register_keras_serializable(package="bert_tf")
class SelfAttention(keras.layers.Layer):
  """Scaled dot-product multi-head self-attention (scope `attention/self`).

  Variables: `query`, `key`, `value` Dense layers (kernel [width, width], bias).
  """

  def __init__(self, num_heads, size_per_head, dropout_rate, initializer_range,
               scale_factor=1, chunk_size=None, name="self", **kwargs):
    """Creates the layer.

    Args:
      num_heads: number of attention heads N.
      size_per_head: width H of each head.
      dropout_rate: dropout on the attention probabilities while training.
      initializer_range: stddev of the kernels' truncated normal initializer.
      scale_factor: the logits Q K^T are divided by
        sqrt(scale_factor * size_per_head); 1 in the original, 2 for TUPE.
      chunk_size: None for full attention, or the number of queries attended
        at a time (memory-bounded attention, same outputs).
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.num_heads = num_heads
    self.size_per_head = size_per_head
    self.dropout_rate = dropout_rate
    self.initializer_range = initializer_range
    self.scale_factor = scale_factor
    self.chunk_size = chunk_size
    width = num_heads * size_per_head
    self.query = layers.dense_layer(width, initializer_range, name="query")
    self.key = layers.dense_layer(width, initializer_range, name="key")
    self.value = layers.dense_layer(width, initializer_range, name="value")

  def build(self, input_shape):
    for dense in (self.query, self.key, self.value):
      dense.build(input_shape)

  def call(self, x, attention_mask=None, attention_bias=None, training=None):
    """Attends from every position of `x` to every unmasked position.

    Args:
      x: float Tensor [batch, seq, width].
      attention_mask: optional 0/1 float Tensor of rank 4 broadcastable to
        [batch, N, seq, seq] (see `create_attention_mask_from_input_mask`).
      attention_bias: optional float Tensor of rank 4 broadcastable to
        [batch, N, seq, seq], added to the scaled logits (TUPE).
      training: whether dropout is active.

    Returns:
      float Tensor [batch, seq, N*H]: the heads' contexts, concatenated.
    """
    shape = tf.shape(x)
    batch, seq = shape[0], shape[1]
    # One matmul for the three projections (see `layers.apply_dense`), then a
    # single transpose [B, S, 3, N, H] -> [3, B, N, S, H] splits the heads.
    qkv = layers.apply_dense(layers.to_matrix(x),
                             [self.query, self.key, self.value])
    qkv = tf.reshape(qkv, [batch, seq, 3, self.num_heads, self.size_per_head])
    q, k, v = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))  # [B, N, S, H]
    num_queries = x.shape[1]
    if self.chunk_size is None or (num_queries is not None and
                                   num_queries <= self.chunk_size):
      context = self._attend(q, k, v, attention_mask, attention_bias, training)
    else:
      context = self._attend_in_chunks(q, k, v, attention_mask, attention_bias,
                                       training)
    context = tf.transpose(context, [0, 2, 1, 3])  # [B, F, N, H]
    return tf.reshape(context, [batch, seq,
                                self.num_heads * self.size_per_head])

  def _attend(self, q, k, v, attention_mask, attention_bias, training):
    """Scaled dot-product attention of q [B, N, F, H] to k, v [B, N, T, H].

    The query is scaled before the product, on [B, N, F, H] rather than on the
    logits [B, N, F, T]: the same numbers when the scale is a power of two
    (1/8 for heads of 64), otherwise the same to float round-off.

    Returns:
      The context [B, N, F, H].
    """
    scale = 1.0 / math.sqrt(float(self.scale_factor * self.size_per_head))
    logits = tf.matmul(q * scale, k, transpose_b=True)  # [B, N, F, T]
    if attention_bias is not None:
      logits += tf.cast(attention_bias, logits.dtype)
    if attention_mask is not None:
      logits += tf.cast(attention_mask_adder(attention_mask), logits.dtype)
    probs = tf.nn.softmax(logits)
    probs = layers.dropout(probs, self.dropout_rate, training)
    return tf.matmul(probs, v)  # [B, N, F, H]

  def _attend_in_chunks(self, q, k, v, attention_mask, attention_bias,
                        training):
    """`_attend` over `chunk_size` queries at a time; the same context."""
    chunk = self.chunk_size
    num_chunks = (tf.shape(q)[2] + chunk - 1) // chunk

    def query_rows(tensor, start):
      """Rows [start, start + chunk) of a rank-4 mask or bias (if it has)."""
      if tensor is None or tensor.shape[-2] == 1:
        return tensor
      return tensor[:, :, start:start + chunk, :]

    def body(index, contexts):
      start = index * chunk
      context = self._attend(q[:, :, start:start + chunk], k, v,
                             query_rows(attention_mask, start),
                             query_rows(attention_bias, start), training)
      # Chunks are stacked along the queries: [C, B, N, H].
      return index + 1, contexts.write(index,
                                       tf.transpose(context, [2, 0, 1, 3]))

    contexts = tf.TensorArray(q.dtype, size=num_chunks, infer_shape=False)
    _, contexts = tf.while_loop(lambda index, _: index < num_chunks, body,
                                (tf.constant(0), contexts),
                                parallel_iterations=1)
    return tf.transpose(contexts.concat(), [1, 2, 0, 3])  # [B, N, F, H]

  def get_config(self):
    config = super().get_config()
    config.update(num_heads=self.num_heads, size_per_head=self.size_per_head,
                  dropout_rate=self.dropout_rate,
                  initializer_range=self.initializer_range,
                  scale_factor=self.scale_factor, chunk_size=self.chunk_size)
    return config
