"""Multi-head attention of the original model (the `attention/self` scope).

The logits are Q K^T / sqrt(size_per_head) plus the original mask adder:
(1 - mask) * -10000 for every masked key position; softmax; dropout on the
probabilities; the context is the weighted sum of the values, heads concatenated.
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


class SelfAttention(keras.layers.Layer):
  """Scaled dot-product multi-head self-attention (scope `attention/self`).

  Variables: `query`, `key`, `value` Dense layers (kernel [width, width], bias).
  """

  def __init__(self, num_heads, size_per_head, dropout_rate, initializer_range,
               name="self", **kwargs):
    """Creates the layer.

    Args:
      num_heads: number of attention heads N.
      size_per_head: width H of each head.
      dropout_rate: dropout on the attention probabilities while training.
      initializer_range: stddev of the kernels' truncated normal initializer.
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.num_heads = num_heads
    self.size_per_head = size_per_head
    self.dropout_rate = dropout_rate
    self.initializer_range = initializer_range
    width = num_heads * size_per_head
    self.query = layers.dense_layer(width, initializer_range, name="query")
    self.key = layers.dense_layer(width, initializer_range, name="key")
    self.value = layers.dense_layer(width, initializer_range, name="value")

  def build(self, input_shape):
    for dense in (self.query, self.key, self.value):
      dense.build(input_shape)

  def _split_heads(self, x):
    """[batch, seq, N*H] -> [batch, seq, N, H]."""
    shape = tf.shape(x)
    return tf.reshape(x, [shape[0], shape[1], self.num_heads,
                          self.size_per_head])

  def call(self, x, attention_mask=None, training=None):
    """Attends from every position of `x` to every unmasked position.

    Args:
      x: float Tensor [batch, seq, width].
      attention_mask: optional 0/1 float Tensor broadcastable to
        [batch, N, seq, seq] (see `create_attention_mask_from_input_mask`).
      training: whether dropout is active.

    Returns:
      float Tensor [batch, seq, N*H]: the heads' contexts, concatenated.
    """
    q = self._split_heads(self.query(x))  # [B, F, N, H]
    k = self._split_heads(self.key(x))  # [B, T, N, H]
    v = self._split_heads(self.value(x))  # [B, T, N, H]
    logits = tf.einsum("bfnh,btnh->bnft", q, k)  # [B, N, F, T]
    logits *= 1.0 / math.sqrt(float(self.size_per_head))
    if attention_mask is not None:
      logits += tf.cast(attention_mask_adder(attention_mask), logits.dtype)
    probs = tf.nn.softmax(logits)
    probs = layers.dropout(probs, self.dropout_rate, training)
    context = tf.einsum("bnft,btnh->bfnh", probs, v)  # [B, F, N, H]
    shape = tf.shape(context)
    return tf.reshape(context, [shape[0], shape[1],
                                self.num_heads * self.size_per_head])

  def get_config(self):
    config = super().get_config()
    config.update(num_heads=self.num_heads, size_per_head=self.size_per_head,
                  dropout_rate=self.dropout_rate,
                  initializer_range=self.initializer_range)
    return config
