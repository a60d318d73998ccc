"""Transformer-XL's position math and layers, named as the original variables.

Position math (time-major, as the original `tf/model.py`): the sinusoidal
encodings of the relative distances (`relative_positional_encodings`), the
`rel_shift` trick that aligns them with the keys, the causal mask over memory
plus segment (`create_mask`) and the memory cache (`cache_memory`).

Layers (each named as its original scope): `rel_attn`
(`RelativeMultiHeadAttention`), `ff` (`PositionwiseFF`), `layer_<i>`
(`TransformerXLLayer`), `adaptive_embed` (`AdaptiveEmbedding`) and
`adaptive_softmax` (`AdaptiveSoftmax`). The bins of the adaptive layers,
`cutoff_<i>`, are scopes without a layer of their own (`naming.variable`).
"""

import keras
import tensorflow as tf

from bert_tf.modeling import layers
from bert_tf.modeling import naming
from bert_tf.modeling.transformer_xl.config import TransformerXLConfig


def positional_embedding(pos_seq, inv_freq):
  """Sinusoidal encodings of positions.

  Args:
    pos_seq: float Tensor [klen] of positions (relative distances).
    inv_freq: float Tensor [d_model / 2] of inverse frequencies.

  Returns:
    float Tensor [klen, 1, d_model]: sin then cos of pos * inv_freq.
  """
  sinusoid_inp = tf.einsum("i,j->ij", pos_seq, inv_freq)
  pos_emb = tf.concat([tf.sin(sinusoid_inp), tf.cos(sinusoid_inp)], -1)
  return pos_emb[:, None, :]


def relative_positional_encodings(klen, d_model, clamp_len=-1):
  """Encodings of the relative distances klen-1, ..., 1, 0 (the original's).

  Args:
    klen: int (or int Tensor), memory length plus segment length.
    d_model: even int, width of the encodings.
    clamp_len: distances above this are clamped to it when > 0.

  Returns:
    float32 Tensor [klen, 1, d_model].
  """
  pos_seq = tf.range(tf.cast(klen, tf.float32) - 1.0, -1.0, -1.0)
  if clamp_len > 0:
    pos_seq = tf.minimum(pos_seq, float(clamp_len))
  inv_freq = 1 / (10000 ** (tf.range(0, d_model, 2.0) / d_model))
  return positional_embedding(pos_seq, inv_freq)


def rel_shift(x):
  """Shifts row i of the position scores left by qlen - 1 - i (the trick).

  `x[i, j]` holds the score of query i with the encoding of distance
  klen-1-j. After the shift, `[i, j]` holds query i with distance
  (mlen + i) - j, the distance between query i and key j, for every key j
  the causal mask keeps.

  Args:
    x: Tensor [qlen, klen, ...].

  Returns:
    Tensor of the same shape.
  """
  x_size = tf.shape(x)
  x = tf.pad(x, [[0, 0], [1, 0]] + [[0, 0]] * (len(x.shape) - 2))
  x = tf.reshape(x, tf.concat([[x_size[1] + 1, x_size[0]], x_size[2:]], 0))
  x = x[1:]
  return tf.reshape(x, x_size)


def create_mask(qlen, mlen, same_length=False):
  """The original attention mask over memory plus segment (1 = masked).

  Query i (at position mlen + i) sees all of the memory and the segment up
  to itself. With `same_length`, the first qlen key columns are also masked
  below the diagonal, so that every query sees mlen + 1 keys.

  Args:
    qlen: segment length (int or int Tensor).
    mlen: memory length (int or int Tensor).
    same_length: whether every query attends to the same number of keys.

  Returns:
    float32 Tensor [qlen, mlen + qlen] of 0 (attend) and 1 (masked).
  """
  attn_mask = tf.ones([qlen, qlen])
  mask_u = tf.linalg.band_part(attn_mask, 0, -1)
  mask_dia = tf.linalg.band_part(attn_mask, 0, 0)
  attn_mask_pad = tf.zeros([qlen, mlen])
  ret = tf.concat([attn_mask_pad, mask_u - mask_dia], 1)
  if same_length:
    mask_l = tf.linalg.band_part(attn_mask, -1, 0)
    ret = tf.concat([ret[:, :qlen] + mask_l - mask_dia, ret[:, qlen:]], 1)
  return ret


def cache_memory(curr_out, prev_mem, mem_len):
  """The memory for the next segment: the last `mem_len` inputs of a layer.

  Args:
    curr_out: float Tensor [qlen, batch, d_model], the layer's input now.
    prev_mem: float Tensor [mlen, batch, d_model] or None.
    mem_len: positions to keep; None keeps the whole segment; 0 returns
      `prev_mem` unchanged, as the original.

  Returns:
    float32 Tensor [min(mem_len, mlen + qlen), batch, d_model], without
    gradient: the memory is kept in float32 whatever the compute dtype.
  """
  curr_out = tf.cast(curr_out, tf.float32)
  if mem_len is None or prev_mem is None:
    new_mem = curr_out
  elif mem_len == 0:
    return tf.cast(prev_mem, tf.float32)
  else:
    new_mem = tf.concat([tf.cast(prev_mem, tf.float32), curr_out],
                        0)[-mem_len:]
  return tf.stop_gradient(new_mem)


class XLConfigSerializable(layers.ConfigSerializable):
  """`layers.ConfigSerializable` for a `TransformerXLConfig`."""

  config_class = TransformerXLConfig


@keras.saving.register_keras_serializable(package="bert_tf")
class RelativeMultiHeadAttention(XLConfigSerializable, keras.layers.Layer):
  """The `rel_attn` scope: relative multi-head attention with post-LN.

  Variables: `qkv/kernel` [d_model, 3 * n_head * d_head], `r/kernel`
  [d_model, n_head * d_head], `o/kernel` [n_head * d_head, d_model] (no
  biases) and `LayerNorm/gamma|beta` [d_model].
  """

  def __init__(self, config, name="rel_attn", **kwargs):
    super().__init__(name=name, **kwargs)
    initializer, _ = config.initializers()
    self.config = config
    width = config.n_head * config.d_head
    self.qkv = keras.layers.Dense(3 * width, use_bias=False, name="qkv",
                                  kernel_initializer=initializer)
    self.r = keras.layers.Dense(width, use_bias=False, name="r",
                                kernel_initializer=initializer)
    self.o = keras.layers.Dense(config.d_model, use_bias=False, name="o",
                                kernel_initializer=initializer)
    self.layer_norm = layers.LayerNorm()

  def build(self, input_shape):
    width = self.config.n_head * self.config.d_head
    self.qkv.build(input_shape)
    self.r.build(input_shape)
    self.o.build(tuple(input_shape[:-1]) + (width,))
    self.layer_norm.build(input_shape)

  def call(self, w, r, r_w_bias, r_r_bias, attn_mask, mems, training=None):
    """Attends from the segment to memory plus segment.

    The float inputs arrive in the compute dtype (Keras casts them); the
    scores are masked and normalized in float32.

    Args:
      w: float Tensor [qlen, batch, d_model], the segment.
      r: float Tensor [klen, 1, d_model], encodings of distances klen-1..0.
      r_w_bias: float Tensor [n_head, d_head], the content bias u.
      r_r_bias: float Tensor [n_head, d_head], the position bias v.
      attn_mask: float Tensor [qlen, klen], 1 where masked.
      mems: float Tensor [mlen, batch, d_model], or None.
      training: whether dropout is active.

    Returns:
      float Tensor [qlen, batch, d_model]: LayerNorm(w + attention output).
    """
    n_head, d_head = self.config.n_head, self.config.d_head
    scale = 1 / (d_head ** 0.5)
    qlen = tf.shape(w)[0]
    rlen = tf.shape(r)[0]
    bsz = tf.shape(w)[1]

    cat = tf.concat([mems, w], 0) if mems is not None else w
    w_heads = self.qkv(cat)  # [klen, batch, 3 * n_head * d_head]
    r_head_k = self.r(r)  # [klen, 1, n_head * d_head]

    w_head_q, w_head_k, w_head_v = tf.split(w_heads, 3, -1)
    w_head_q = w_head_q[-qlen:]
    klen = tf.shape(w_head_k)[0]

    w_head_q = tf.reshape(w_head_q, [qlen, bsz, n_head, d_head])
    w_head_k = tf.reshape(w_head_k, [klen, bsz, n_head, d_head])
    w_head_v = tf.reshape(w_head_v, [klen, bsz, n_head, d_head])
    r_head_k = tf.reshape(r_head_k, [rlen, n_head, d_head])

    rw_head_q = w_head_q + r_w_bias
    rr_head_q = w_head_q + r_r_bias

    # Content (a + c) and position (b + d) terms: [qlen, klen, batch, n_head].
    ac = tf.einsum("ibnd,jbnd->ijbn", rw_head_q, w_head_k)
    bd = rel_shift(tf.einsum("ibnd,jnd->ijbn", rr_head_q, r_head_k))

    # Scores, mask and softmax in float32 whatever the compute dtype (-1e30
    # overflows float16; the casts are no-ops in float32).
    attn_score = (tf.cast(ac, tf.float32) + tf.cast(bd, tf.float32)) * scale
    attn_mask_t = tf.cast(attn_mask, tf.float32)[:, :, None, None]
    attn_score = attn_score * (1 - attn_mask_t) - 1e30 * attn_mask_t

    attn_prob = tf.cast(tf.nn.softmax(attn_score, 1), w.dtype)
    attn_prob = layers.dropout(attn_prob, self.config.dropatt, training)

    attn_vec = tf.einsum("ijbn,jbnd->ibnd", attn_prob, w_head_v)
    attn_vec = tf.reshape(attn_vec, [qlen, bsz, n_head * d_head])

    attn_out = self.o(attn_vec)
    attn_out = layers.dropout(attn_out, self.config.dropout, training)
    return self.layer_norm(attn_out + w)


@keras.saving.register_keras_serializable(package="bert_tf")
class PositionwiseFF(XLConfigSerializable, keras.layers.Layer):
  """The `ff` scope: ReLU feed-forward with residual and post-LN.

  Variables: `layer_1/kernel|bias` [d_model, d_inner], `layer_2/kernel|bias`
  [d_inner, d_model], `LayerNorm/gamma|beta` [d_model].
  """

  def __init__(self, config, name="ff", **kwargs):
    super().__init__(name=name, **kwargs)
    initializer, _ = config.initializers()
    self.config = config
    self.layer_1 = keras.layers.Dense(config.d_inner, activation="relu",
                                      kernel_initializer=initializer,
                                      name="layer_1")
    self.layer_2 = keras.layers.Dense(config.d_model,
                                      kernel_initializer=initializer,
                                      name="layer_2")
    self.layer_norm = layers.LayerNorm()

  def build(self, input_shape):
    self.layer_1.build(input_shape)
    self.layer_2.build(tuple(input_shape[:-1]) + (self.config.d_inner,))
    self.layer_norm.build(input_shape)

  def call(self, inp, training=None):
    """inp [qlen, batch, d_model] -> LayerNorm(inp + FF(inp)), same shape."""
    output = self.layer_1(inp)
    output = layers.dropout(output, self.config.dropout, training)
    output = self.layer_2(output)
    output = layers.dropout(output, self.config.dropout, training)
    return self.layer_norm(output + inp)


@keras.saving.register_keras_serializable(package="bert_tf")
class TransformerXLLayer(XLConfigSerializable, keras.layers.Layer):
  """One layer (`layer_<i>`): `rel_attn` then `ff`."""

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.rel_attn = RelativeMultiHeadAttention(config)
    self.ff = PositionwiseFF(config)

  def build(self, input_shape):
    self.rel_attn.build(input_shape)
    self.ff.build(input_shape)

  def call(self, w, r, r_w_bias, r_r_bias, attn_mask, mems, training=None):
    """Applies the layer; arguments as `RelativeMultiHeadAttention.call`."""
    output = self.rel_attn(w, r, r_w_bias, r_r_bias, attn_mask, mems,
                           training=training)
    return self.ff(output, training=training)


@keras.saving.register_keras_serializable(package="bert_tf")
class AdaptiveEmbedding(XLConfigSerializable, keras.layers.Layer):
  """The `adaptive_embed` scope: token embeddings scaled by sqrt(d_model).

  With div_val 1: `lookup_table` [n_token, d_embed] and, if d_embed !=
  d_model, `proj_W` [d_embed, d_model]. With div_val > 1: per bin i
  `cutoff_<i>/lookup_table` [bin size, d_embed // div_val**i] and
  `cutoff_<i>/proj_W` [that width, d_model].
  """

  def __init__(self, config, name="adaptive_embed", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    initializer, proj_initializer = config.initializers()
    # (path, specs) of each bin: with div_val 1 the table (and
    # projection) sit in `adaptive_embed` itself, else in `cutoff_<i>`.
    self.bin_specs = []
    if config.div_val == 1:
      specs = [("lookup_table", (config.n_token, config.d_embed),
                initializer)]
      if config.d_embed != config.d_model:
        specs.append(("proj_W", (config.d_embed, config.d_model),
                      proj_initializer))
      self.bin_specs.append(("", specs))
    else:
      ends = [0] + config.cutoffs + [config.n_token]
      for i in range(len(ends) - 1):
        width = config.d_embed // (config.div_val ** i)
        specs = [("lookup_table", (ends[i + 1] - ends[i], width), initializer)]
        if width != config.d_model or config.proj_same_dim:
          specs.append(("proj_W", (width, config.d_model), proj_initializer))
        self.bin_specs.append(("cutoff_%d" % i, specs))

  def build(self, input_shape=None):
    self.bins = _bin_variables(self.bin_specs)

  def params(self):
    """The softmax's tied parameters, as the original `shared_params`.

    Returns:
      (tables, projections): with div_val 1 the `lookup_table` variable and
      `proj_W` (or None); else lists of them per bin.
    """
    tables = [variables["lookup_table"] for variables in self.bins]
    projections = [variables.get("proj_W") for variables in self.bins]
    if self.config.div_val == 1:
      return tables[0], projections[0]
    return tables, projections

  def call(self, x):
    """Embeds token ids x [qlen, batch] -> [qlen, batch, d_model].

    The tables are read in float32 and the looked-up rows cast to the compute
    dtype (not the whole tables), as BERT's embeddings.

    Args:
      x: int Tensor [qlen, batch] of token ids.

    Returns:
      Tensor [qlen, batch, d_model] in the compute dtype.
    """
    config = self.config
    dtype = self.compute_dtype
    if config.div_val == 1:
      table, proj = self.params()
      y = tf.cast(tf.nn.embedding_lookup(table, x), dtype)
      if proj is not None:
        y = tf.einsum("ibe,ed->ibd", y, tf.cast(proj, dtype))
    else:
      ends = [0] + config.cutoffs + [config.n_token]
      x_size = tf.shape(x)
      y = tf.zeros([x_size[0], x_size[1], config.d_model], dtype)
      tables, projs = self.params()
      for i, (table, proj) in enumerate(zip(tables, projs)):
        mask = (x >= ends[i]) & (x < ends[i + 1])
        cur_y = tf.cast(tf.nn.embedding_lookup(
            table, tf.boolean_mask(x, mask) - ends[i]), dtype)
        if proj is not None:
          cur_y = tf.einsum("id,de->ie", cur_y, tf.cast(proj, dtype))
        y += tf.scatter_nd(tf.where(mask), cur_y,
                           tf.cast(tf.shape(y), tf.int64))
    return y * (config.d_model ** 0.5)


@keras.saving.register_keras_serializable(package="bert_tf")
class AdaptiveSoftmax(XLConfigSerializable, keras.layers.Layer):
  """The `adaptive_softmax` scope: the output layer, tied to the embedding.

  Without cutoffs: `bias` [n_token]. With cutoffs, per bin i: `cutoff_<i>/b`
  [bin size], `cutoff_<i>/proj` [width, d_model] unless tied or not needed,
  and in bin 0 the cluster logits `cutoff_0/cluster_W` [n_bins - 1, d_embed]
  and `cutoff_0/cluster_b` [n_bins - 1].

  It returns log-probabilities, never a loss (the task,
  `bert_tf.tasks.transformer_xl_lm`, computes that). Under a mixed precision
  policy the logits are computed in the compute dtype and cast to float32
  before the float32 biases are added, as the BERT heads do: the
  log-probabilities are float32.
  """

  def __init__(self, config, embedding=None, name="adaptive_softmax",
               **kwargs):
    """Creates the layer.

    Args:
      config: `TransformerXLConfig`.
      embedding: the model's `AdaptiveEmbedding`, whose tables (and, as the
        config says, projections) the softmax reuses. Being shared, it is
        not part of `get_config`: the model that owns both passes it.
      name: scope name.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(name=name, **kwargs)
    self.config = config
    self.embedding = embedding
    _, proj_initializer = config.initializers()
    self.bin_specs = []
    if not config.cutoffs:
      self.bin_specs.append(("", [("bias", (config.n_token,), "zeros")]))
    ends = [0] + config.cutoffs + [config.n_token]
    for i in range(len(config.cutoffs) + 1 if config.cutoffs else 0):
      width = config.d_embed // (config.div_val ** i)
      specs = [("b", (ends[i + 1] - ends[i],), "zeros")]
      if not config.tie_projs[i] and not (
          (config.div_val == 1 or not config.proj_same_dim) and
          config.d_model == width):
        specs.append(("proj", (width, config.d_model), proj_initializer))
      if i == 0:
        specs.append(("cluster_W", (len(config.cutoffs), config.d_embed),
                      "zeros"))
        specs.append(("cluster_b", (len(config.cutoffs),), "zeros"))
      self.bin_specs.append(("cutoff_%d" % i, specs))

  def build(self, input_shape=None):
    self.bins = _bin_variables(self.bin_specs)

  def _embedding_params(self):
    """The tied `AdaptiveEmbedding.params()`; fails clearly without them."""
    if self.embedding is None:
      raise ValueError("AdaptiveSoftmax %r has no embedding: it reuses the "
                       "tables of the model's AdaptiveEmbedding, pass it as "
                       "`embedding`" % self.name)
    return self.embedding.params()

  def _bin_params(self, i):
    """(W, b, proj) of bin i, the head (bin 0) with its cluster rows."""
    config = self.config
    tables, projs = self._embedding_params()
    ends = [0] + config.cutoffs + [config.n_token]
    variables = self.bins[i]
    w = tables[ends[i]:ends[i + 1]] if config.div_val == 1 else tables[i]
    b = variables["b"]
    if config.tie_projs[i]:
      proj = projs if config.div_val == 1 else projs[i]
    else:
      proj = variables.get("proj")
    if i == 0:
      w = tf.concat([w, variables["cluster_W"]], 0)
      b = tf.concat([b, variables["cluster_b"]], 0)
    return w, b, proj

  def _bin_log_probs(self, i, hidden, head_log_probs):
    """log p(token of bin i) for every token of the bin.

    Args:
      i: bin index, >= 1 (bin 0 is the head's own rows).
      hidden: [..., d_model], the last layer's output at some positions.
      head_log_probs: float32 [..., cutoffs[0] + n_bins - 1], the head's
        log-probabilities at the same positions.

    Returns:
      float32 [..., bin size]: the head's log-probability of cluster i plus
      the token's log-probability within the bin.
    """
    w, b, proj = self._bin_params(i)
    tail = tf.nn.log_softmax(_logit(hidden, w, b, proj))
    cluster = self.config.cutoffs[0] + i - 1
    return head_log_probs[..., cluster:cluster + 1] + tail

  def call(self, hidden, target=None):
    """Log-probabilities of the next tokens (float32).

    With `target`, only the targets' log-probabilities are computed, and only
    at the positions whose target falls in a bin is that bin's softmax
    computed, as the original's `mask_adaptive_logsoftmax` (a full
    [qlen, batch, n_token] output of a large vocabulary would not fit).

    Args:
      hidden: float Tensor [qlen, batch, d_model], the last layer's output.
      target: int Tensor [qlen, batch] of token ids, or None.

    Returns:
      float32 Tensor: with `target`, [qlen, batch] of log p(target); without,
      [qlen, batch, n_token] of log p(token) for every token.
    """
    config = self.config
    if not config.cutoffs:
      table, proj = self._embedding_params()
      log_probs = tf.nn.log_softmax(
          _logit(hidden, table, self.bins[0]["bias"], proj))
      if target is None:
        return log_probs
      return tf.gather(log_probs, target, batch_dims=2)
    ends = [0] + config.cutoffs + [config.n_token]
    head_log_probs = tf.nn.log_softmax(_logit(hidden, *self._bin_params(0)))
    if target is None:
      return tf.concat(
          [head_log_probs[..., :ends[1]]] +
          [self._bin_log_probs(i, hidden, head_log_probs)
           for i in range(1, len(ends) - 1)], -1)
    target_log_probs = tf.zeros_like(target, dtype=tf.float32)
    for i in range(len(ends) - 1):
      mask = (target >= ends[i]) & (target < ends[i + 1])
      cur_target = tf.boolean_mask(target, mask) - ends[i]  # [n]
      cur_head_log_probs = tf.boolean_mask(head_log_probs, mask)
      if i == 0:
        cur_log_probs = cur_head_log_probs
      else:
        cur_log_probs = self._bin_log_probs(
            i, tf.boolean_mask(hidden, mask), cur_head_log_probs)
      target_log_probs += tf.scatter_nd(
          tf.where(mask), tf.gather(cur_log_probs, cur_target, batch_dims=1),
          tf.cast(tf.shape(target), tf.int64))
    return target_log_probs


def _bin_variables(bin_specs):
  """The variables of the bins of an adaptive embedding or softmax.

  They are read in float32 (not autocast under a mixed precision policy):
  the layers cast what they multiply to the compute dtype and add the biases
  in float32.

  Args:
    bin_specs: list of (path, specs), specs a list of (name, shape,
      initializer); path "" for the layer's own scope, else `cutoff_<i>`.

  Returns:
    A list of dicts, per bin: name -> variable `<path>/<name>`.
  """
  return [{name: naming.variable(name, shape, initializer, path,
                                 autocast=False)
           for name, shape, initializer in specs}
          for path, specs in bin_specs]


def _logit(x, w, b, proj):
  """Logits of x [..., d_model]: (x proj^T) w^T + b, float32 [..., rows of w].

  The products are computed in x's dtype; b (float32) is added in float32.
  """
  y = x
  if proj is not None:
    y = tf.einsum("...d,ed->...e", y, tf.cast(proj, x.dtype))
  logits = tf.einsum("...d,nd->...n", y, tf.cast(w, x.dtype))
  return tf.cast(logits, tf.float32) + b
