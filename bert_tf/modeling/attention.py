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
  to_seq]. Each query row's softmax is unchanged, so the outputs and the
  gradients equal full attention's (to float round-off). The gradient
  recomputes each chunk's probabilities instead of keeping them
  (`chunked_attention`), so memory is linear in the sequence length for a
  fixed chunk size in training as in inference. Dropout on the chunks'
  probabilities is stateless (seeded per call and chunk), a different random
  stream from full attention's `tf.nn.dropout` with the same distribution.
  The caller may pass the call's seed (`dropout_seed`): the Transformer block
  does, to recompute itself in the backward pass (`encoder.TransformerLayer`).
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
class SelfAttention(layers.ArgumentsSerializable, keras.layers.Layer):
  """Scaled dot-product multi-head self-attention (scope `attention/self`).

  Variables: `query`, `key`, `value` Dense layers (kernel [width, width], bias).
  """

  config_arguments = ("num_heads", "size_per_head", "dropout_rate",
                      "initializer_range", "scale_factor", "chunk_size")

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

  def call(self, x, attention_mask=None, attention_bias=None, training=None,
           dropout_seed=None):
    """Attends from every position of `x` to every unmasked position.

    Args:
      x: float Tensor [batch, seq, width].
      attention_mask: optional 0/1 float Tensor of rank 4 broadcastable to
        [batch, N, seq, seq] (see `create_attention_mask_from_input_mask`).
      attention_bias: optional float Tensor of rank 4 broadcastable to
        [batch, N, seq, seq], added to the scaled logits (TUPE).
      training: whether dropout is active.
      dropout_seed: None, or an int32 Tensor [2] (`layers.dropout_seed`) that
        makes the dropout on the probabilities stateless, a function of the
        seed (chunked attention draws its own seed per call when None).

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
      context = self._attend(q, k, v, attention_mask, attention_bias, training,
                             dropout_seed)
    else:
      context = self._attend_in_chunks(q, k, v, attention_mask, attention_bias,
                                       training, dropout_seed)
    context = tf.transpose(context, [0, 2, 1, 3])  # [B, F, N, H]
    return tf.reshape(context, [batch, seq,
                                self.num_heads * self.size_per_head])

  def _scaled(self, q):
    """q / sqrt(scale_factor * size_per_head)."""
    return q * (1.0 / math.sqrt(float(self.scale_factor * self.size_per_head)))

  def _attend(self, q, k, v, attention_mask, attention_bias, training,
              dropout_seed):
    """Scaled dot-product attention of q [B, N, F, H] to k, v [B, N, T, H].

    The query is scaled before the product, on [B, N, F, H] rather than on the
    logits [B, N, F, T]: the same numbers when the scale is a power of two
    (1/8 for heads of 64), otherwise the same to float round-off.

    Returns:
      The context [B, N, F, H].
    """
    logits = tf.matmul(self._scaled(q), k, transpose_b=True)  # [B, N, F, T]
    if attention_bias is not None:
      logits += tf.cast(attention_bias, logits.dtype)
    if attention_mask is not None:
      logits += tf.cast(attention_mask_adder(attention_mask), logits.dtype)
    probs = tf.nn.softmax(logits)
    probs = layers.dropout(probs, self.dropout_rate, training, dropout_seed)
    return tf.matmul(probs, v)  # [B, N, F, H]

  def _attend_in_chunks(self, q, k, v, attention_mask, attention_bias,
                        training, dropout_seed):
    """`_attend` over `chunk_size` queries at a time (`chunked_attention`)."""
    adder = None
    if attention_mask is not None:
      adder = tf.cast(attention_mask_adder(attention_mask), q.dtype)
    if attention_bias is not None:
      attention_bias = tf.cast(attention_bias, q.dtype)
    rate, seed = 0.0, None
    if self.dropout_rate and training is not False and training is not None:
      rate = self.dropout_rate
      if training is not True:
        rate *= tf.cast(training, q.dtype)
      seed = dropout_seed
      if seed is None:
        seed = layers.dropout_seed(training)
    return chunked_attention(self._scaled(q), k, v, adder, attention_bias,
                             self.chunk_size, rate, seed)


def chunked_attention(q, k, v, adder, bias, chunk_size, dropout_rate=0.0,
                      seed=None):
  """Softmax attention of q to k, v, `chunk_size` queries at a time.

  context = dropout(softmax(q k^T + bias + adder)) v, computed for
  `chunk_size` query rows per iteration of a `tf.while_loop`. Each row's
  softmax is the full one, so the context equals full attention's (to float
  round-off).

  The gradient is our own (flash-attention style): the backward pass runs a
  second loop over the chunks that recomputes each chunk's probabilities from
  q, k, v instead of keeping them, so neither pass ever holds more than one
  chunk's [batch, heads, chunk_size, to_seq] logits, and training memory is
  linear in the length too (the gradient of a `tf.while_loop` would keep
  every iteration's probabilities on stacks). Per chunk, with P the
  probabilities and D the dropout's scaled keep mask:
    dv += (P*D)^T dcontext,  dP = D * (dcontext v^T),
    dlogits = P * (dP - rowsum(dP * P)),
    dq = dlogits k,  dk += dlogits^T q,  dbias = dlogits (summed where
    the bias broadcasts).
  Dropout is stateless, its mask a function of (`seed`, chunk index), so the
  backward pass regenerates exactly the forward pass's mask. The queries (and
  the rows of a per-query mask or bias) are padded with zero rows to whole
  chunks, so every chunk has the same shape and the loops compile under XLA
  (`jit_compile`, TPUs); the padding rows are dropped from the outputs and
  give no gradient.

  Args:
    q: float Tensor [batch, heads, from_seq, size_per_head], already scaled.
    k: float Tensor [batch, heads, to_seq, size_per_head].
    v: float Tensor [batch, heads, to_seq, size_per_head].
    adder: None, or the mask's additive term (`attention_mask_adder`) of q's
      dtype, [batch, 1, 1 or from_seq, to_seq]; it gets no gradient.
    bias: None, or a float Tensor of q's dtype broadcastable to the logits
      [batch, heads, from_seq, to_seq] with 1 or from_seq rows, added to the
      logits (TUPE); it gets a gradient.
    chunk_size: queries per iteration (a Python int).
    dropout_rate: dropout on the probabilities (float, or a scalar Tensor of
      q's dtype); 0 for none.
    seed: int32 Tensor [2], the dropout's stateless seed (None when
      `dropout_rate` is 0).

  Returns:
    The context, float Tensor [batch, heads, from_seq, size_per_head].
  """
  from_seq = tf.shape(q)[2]
  num_chunks = (from_seq + chunk_size - 1) // chunk_size

  def whole_chunks(tensor):
    """[b, n, from_seq, x] -> [b, n, num_chunks * chunk_size, x], zero rows."""
    return tf.pad(tensor, [[0, 0], [0, 0],
                           [0, num_chunks * chunk_size - from_seq], [0, 0]])

  def has_rows(term):
    """Whether a mask or bias term has a row per query (else one for all)."""
    return term.shape[-2] != 1

  def chunk_rows(term, start):
    """A (padded) term's rows of the chunk starting at query `start`."""
    return term[:, :, start:start + chunk_size] if has_rows(term) else term

  def chunk_probs(q, k, terms, index):
    """The probabilities of chunk `index` [B, N, C, T] and its query rows.

    Args:
      q: the queries padded to whole chunks.
      k: the keys.
      terms: the (padded) bias and mask terms added to the logits.
      index: the chunk's index (int32 scalar Tensor).
    """
    start = index * chunk_size
    q_rows = q[:, :, start:start + chunk_size]
    logits = tf.matmul(q_rows, k, transpose_b=True)
    for term in terms:
      logits += chunk_rows(term, start)
    return tf.nn.softmax(logits), q_rows

  def dropout(x, index):
    """The chunk's dropout (scaled keep mask times `x`), the same each time."""
    if seed is None:
      return x
    return tf.nn.experimental.stateless_dropout(
        x, dropout_rate,
        tf.random.experimental.stateless_fold_in(seed, index))

  def loop(body, initial):
    """Runs `body(index, *state)` for every chunk; returns the final state."""
    return tf.while_loop(lambda index, *_: index < num_chunks,
                         lambda index, *state: (index + 1,) + body(index,
                                                                   *state),
                         (tf.constant(0),) + initial,
                         parallel_iterations=1)[1:]

  def rows_first(tensor):
    """[b, n, rows, x] -> [rows, b, n, x] (chunks stack along rows)."""
    return tf.transpose(tensor, [2, 0, 1, 3])

  def chunk_array():
    """A TensorArray for one `rows_first` Tensor per chunk."""
    return tf.TensorArray(q.dtype, size=num_chunks)

  def rows_back(chunks):
    """A TensorArray of `rows_first` chunks -> [b, n, chunks' rows, x]."""
    stacked = chunks.stack()  # [chunks, rows, b, n, x]
    rows = tf.reshape(stacked, tf.concat([[-1], tf.shape(stacked)[2:]], 0))
    return tf.transpose(rows, [1, 2, 0, 3])

  @tf.custom_gradient
  def attend(q, k, v, *biases):
    padded_q = whole_chunks(q)
    terms = [whole_chunks(term) if has_rows(term) else term
             for term in list(biases) + [adder] if term is not None]

    def forward(index, contexts):
      probs, _ = chunk_probs(padded_q, k, terms, index)
      return (contexts.write(index, rows_first(tf.matmul(dropout(probs, index),
                                                         v))),)

    contexts, = loop(forward, (chunk_array(),))

    def grad(dcontext):
      padded_dcontext = whole_chunks(dcontext)  # no gradient on padding rows

      def backward(index, dq, dk, dv, dbias):
        probs, q_rows = chunk_probs(padded_q, k, terms, index)
        start = index * chunk_size
        dcontext_rows = padded_dcontext[:, :, start:start + chunk_size]
        dv += tf.cast(tf.matmul(dropout(probs, index), dcontext_rows,
                                transpose_a=True), tf.float32)
        dprobs = dropout(tf.matmul(dcontext_rows, v, transpose_b=True), index)
        dlogits = probs * (dprobs - tf.reduce_sum(dprobs * probs, -1,
                                                  keepdims=True))
        dq = dq.write(index, rows_first(tf.matmul(dlogits, k)))
        dk += tf.cast(tf.matmul(dlogits, q_rows, transpose_a=True), tf.float32)
        if biases:
          bias_rows = chunk_rows(terms[0], start)
          reduce_axes, _ = tf.raw_ops.BroadcastGradientArgs(
              s0=tf.shape(bias_rows), s1=tf.shape(dlogits))
          dbias = dbias.write(index, rows_first(tf.reshape(
              tf.reduce_sum(dlogits, reduce_axes), tf.shape(bias_rows))))
        dk.set_shape(k.shape)  # the loop needs them as static as k and v
        dv.set_shape(v.shape)
        return dq, dk, dv, dbias

      dq, dk, dv, dbias = loop(backward, (
          chunk_array(), tf.zeros_like(k, tf.float32),
          tf.zeros_like(v, tf.float32), chunk_array()))
      grads = [rows_back(dq)[:, :, :from_seq], tf.cast(dk, k.dtype),
               tf.cast(dv, v.dtype)]
      if biases:
        dbias = rows_back(dbias)
        if has_rows(bias):
          dbias = dbias[:, :, :from_seq]
        else:  # one row for every query: sum the chunks'
          dbias = tf.reduce_sum(dbias, 2, keepdims=True)
        grads.append(dbias)
      return grads

    return rows_back(contexts)[:, :, :from_seq], grad

  return attend(q, k, v, *([] if bias is None else [bias]))
