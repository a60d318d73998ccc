"""Transformer-XL: relative positional attention with segment-level recurrence.

A Keras version of the TensorFlow model of kimiyoung/transformer-xl
(`tf/model.py`, the function `transformer` with `use_tpu=False`), computed op
for op like the original so that its checkpoints load and give the same
numbers:

- embeddings: an adaptive embedding (`adaptive_embed`, one `lookup_table`, or
  one per frequency bin with `div_val` > 1, each with a `proj_W` to d_model),
  scaled by sqrt(d_model);
- each layer `layer_<i>`: relative multi-head attention (`rel_attn`: `qkv`,
  `r` and `o` projections without bias, the content bias `r_w_bias` (u) and
  position bias `r_r_bias` (v), shared by all layers or one per layer with
  `untie_r`, the `rel_shift` trick, sinusoidal encodings of the relative
  distances klen-1 ... 0 clamped at `clamp_len`, the causal mask over memory
  plus segment, optionally `same_length`, scores scaled by 1/sqrt(d_head),
  residual and post-LayerNorm) then a position-wise feed-forward (`ff`,
  ReLU, residual and post-LayerNorm);
- segment-level recurrence: the input of every layer is cached as memory (the
  last `mem_len` positions, without gradient) and attended to by the next
  segment;
- the output: a softmax tied to the embedding (`adaptive_softmax/bias`), or the
  adaptive softmax over `cutoffs` (head with cluster logits, tails with their
  own biases and projections, the projections optionally tied).

Everything is time-major, as in the original: tokens are [len, batch], hidden
states and memories [len, batch, d_model]. Variables are built when the model
is constructed, and their Keras paths are the original names
(`transformer/r_w_bias`, `transformer/layer_0/rel_attn/qkv/kernel`,
`transformer/adaptive_embed/lookup_table`, `transformer/adaptive_softmax/bias`,
...), so `bert_tf.checkpoints.load_checkpoint(model, "model.ckpt")` reads an
original checkpoint.
"""

import dataclasses

import keras
import tensorflow as tf

from bert_tf.modeling import config as config_lib
from bert_tf.modeling import layers

INITS = ("normal", "uniform")

# Keys of the original run configuration that describe the data or the run,
# not the model: `TransformerXLConfig.from_dict` accepts and ignores them.
RUN_KEYS = ("tgt_len", "eval_tgt_len", "batch_size", "train_batch_size",
            "eval_batch_size", "note")


@dataclasses.dataclass
class TransformerXLConfig(object):
  """Hyperparameters of the model: the original flags of `train_gpu.py`.

  The defaults are the original flag defaults; `n_token` (the vocabulary
  size, from the original corpus-info.json) has none.

  Attributes:
    n_token: vocabulary size.
    n_layer: number of layers.
    d_model: width of the hidden states.
    d_embed: width of the embeddings (projected to d_model if different).
    n_head: number of attention heads.
    d_head: width of one head.
    d_inner: width of the feed-forward layer.
    dropout: dropout rate of the embeddings, positions and layer outputs.
    dropatt: dropout rate of the attention probabilities.
    mem_len: number of positions cached as memory (0: the memory passed in
      is returned unchanged, as the original).
    same_length: every query attends to the same number of keys.
    clamp_len: relative distances above this are clamped (-1: none).
    untie_r: one pair of `r_w_bias`/`r_r_bias` per layer instead of one
      shared pair.
    init: "normal" (stddev `init_std`) or "uniform" (+-`init_range`).
    init_std: stddev of the normal initializer.
    proj_init_std: stddev of the embedding projections (normal init).
    init_range: range of the uniform initializer.
    cutoffs: ascending token ids where the adaptive softmax bins start
      (empty: a plain softmax).
    div_val: each bin's embedding width is d_embed // div_val**bin.
    proj_share_all_but_first: tie the softmax projections of all bins but
      the first to the embedding projections.
    proj_same_dim: give a bin a projection even when its width is d_model.
  """
  n_token: int
  n_layer: int = 6
  d_model: int = 500
  d_embed: int = 500
  n_head: int = 10
  d_head: int = 50
  d_inner: int = 1000
  dropout: float = 0.1
  dropatt: float = 0.1
  mem_len: int = 70
  same_length: bool = False
  clamp_len: int = -1
  untie_r: bool = False
  init: str = "normal"
  init_std: float = 0.02
  proj_init_std: float = 0.01
  init_range: float = 0.1
  cutoffs: list = dataclasses.field(default_factory=list)
  div_val: int = 1
  proj_share_all_but_first: bool = False
  proj_same_dim: bool = True

  @classmethod
  def from_dict(cls, values, source="config"):
    """Builds a validated config from a dict of the original flag names.

    Args:
      values: dict of field names to values; the keys of `RUN_KEYS` are
        ignored.
      source: where the dict came from, for error messages.

    Returns:
      A validated `TransformerXLConfig`.

    Raises:
      ValueError: for an unknown key, a missing `n_token` or an invalid value.
    """
    if not isinstance(values, dict):
      raise ValueError("%s: expected a JSON object of Transformer-XL config "
                       "keys, found %s" % (source, type(values).__name__))
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names - set(RUN_KEYS))
    if unknown:
      raise ValueError("%s: unknown Transformer-XL config key(s) %s (expected "
                       "some of %s)" % (source, ", ".join(unknown),
                                        ", ".join(sorted(names))))
    if "n_token" not in values:
      raise ValueError("%s: missing required field 'n_token' (the vocabulary "
                       "size, an int > 0)" % source)
    config = cls(**{k: v for k, v in values.items() if k in names})
    config.cutoffs = list(config.cutoffs)
    config.validate(source)
    return config

  @classmethod
  def from_json_file(cls, json_file):
    """Reads a config from a JSON file (see `from_dict`).

    Args:
      json_file: path of the file.

    Returns:
      A validated `TransformerXLConfig`.

    Raises:
      ValueError: if the file is missing, not JSON, or has invalid fields.
    """
    return cls.from_dict(
        config_lib.read_json_file(json_file, "Transformer-XL config file"),
        source=json_file)

  @classmethod
  def from_bert_config(cls, bert_config, source="bert_config"):
    """Maps a BERT config with `attention_type: relative_xl` to this config.

    `vocab_size` -> n_token, `num_hidden_layers` -> n_layer, `hidden_size` ->
    d_model and d_embed, `num_attention_heads` -> n_head (d_head =
    hidden_size / heads), `intermediate_size` -> d_inner,
    `hidden_dropout_prob` -> dropout, `attention_probs_dropout_prob` ->
    dropatt, `initializer_range` -> init_std; `mem_len`, `clamp_len`,
    `same_length` and `untie_r` keep their names.

    Args:
      bert_config: a dict of `bert_config.json` keys (or an object with a
        `to_dict` method).
      source: where it came from, for error messages.

    Returns:
      A validated `TransformerXLConfig`.

    Raises:
      ValueError: if `attention_type` is not "relative_xl", `hidden_act` is
        not "relu" (the Transformer-XL feed-forward), or a value is invalid.
    """
    values = (bert_config.to_dict() if hasattr(bert_config, "to_dict")
              else dict(bert_config))
    if values.get("attention_type") != "relative_xl":
      raise ValueError("%s: field 'attention_type' must be 'relative_xl' for "
                       "Transformer-XL, found %r" %
                       (source, values.get("attention_type")))
    if values.get("hidden_act", "gelu") != "relu":
      raise ValueError("%s: field 'hidden_act' must be 'relu' for "
                       "Transformer-XL (its feed-forward is ReLU), found %r" %
                       (source, values.get("hidden_act", "gelu")))
    if "vocab_size" not in values:
      raise ValueError("%s: missing required field 'vocab_size'" % source)
    hidden = values.get("hidden_size", 768)
    heads = values.get("num_attention_heads", 12)
    if hidden % heads:
      raise ValueError("%s: hidden_size (%d) is not a multiple of "
                       "num_attention_heads (%d)" % (source, hidden, heads))
    return cls.from_dict({
        "n_token": values["vocab_size"],
        "n_layer": values.get("num_hidden_layers", 12),
        "d_model": hidden,
        "d_embed": hidden,
        "n_head": heads,
        "d_head": hidden // heads,
        "d_inner": values.get("intermediate_size", 3072),
        "dropout": values.get("hidden_dropout_prob", 0.1),
        "dropatt": values.get("attention_probs_dropout_prob", 0.1),
        "init_std": values.get("initializer_range", 0.02),
        "mem_len": values.get("mem_len", 0),
        "clamp_len": values.get("clamp_len", -1),
        "same_length": values.get("same_length", False),
        "untie_r": values.get("untie_r", False),
    }, source=source)

  def to_dict(self):
    """Returns the config as a dict of the original flag names."""
    return dataclasses.asdict(self)

  def validate(self, source="config"):
    """Checks every field; raises a ValueError naming the first bad one.

    Args:
      source: where the config came from, for error messages.

    Raises:
      ValueError: on an invalid field.
    """
    def fail(field, expected):
      raise ValueError("%s: field '%s' must be %s, found %r" %
                       (source, field, expected, getattr(self, field)))


    for field in ("n_token", "n_layer", "d_model", "d_embed", "n_head",
                  "d_head", "d_inner", "div_val"):
      if not config_lib.is_int(getattr(self, field)) or getattr(self, field) <= 0:
        fail(field, "an int > 0")
    for field in ("dropout", "dropatt"):
      value = getattr(self, field)
      if not config_lib.is_number(value) or not 0.0 <= value < 1.0:
        fail(field, "a number in [0, 1)")
    if not config_lib.is_int(self.mem_len) or self.mem_len < 0:
      fail("mem_len", "an int >= 0")
    if not config_lib.is_int(self.clamp_len):
      fail("clamp_len", "an int (-1 or 0: no clamping)")
    for field in ("same_length", "untie_r", "proj_share_all_but_first",
                  "proj_same_dim"):
      if not isinstance(getattr(self, field), bool):
        fail(field, "true or false")
    if self.init not in INITS:
      fail("init", "one of %s" % ", ".join(INITS))
    for field in ("init_std", "proj_init_std", "init_range"):
      if not config_lib.is_number(getattr(self, field)) or getattr(self, field) <= 0:
        fail(field, "a number > 0")
    bounds = [0] + list(self.cutoffs) + [self.n_token]
    if (not all(config_lib.is_int(c) for c in self.cutoffs) or
        any(a >= b for a, b in zip(bounds, bounds[1:]))):
      fail("cutoffs", "ascending ints strictly between 0 and n_token (%d)" %
           self.n_token)
    if self.div_val > 1 and not self.cutoffs:
      fail("div_val", "1 when there are no cutoffs")
    if any(self.d_embed // self.div_val ** i == 0
           for i in range(len(self.cutoffs) + 1)):
      fail("div_val", "small enough that every bin keeps a width >= 1 "
           "(d_embed // div_val**bin)")

  @property
  def tie_projs(self):
    """Per bin: whether the softmax reuses the embedding projection."""
    return [self.proj_share_all_but_first and i > 0
            for i in range(len(self.cutoffs) + 1)]


def _initializers(config):
  """The original (initializer, proj_initializer) of `train_gpu.py`."""
  if config.init == "uniform":
    initializer = keras.initializers.RandomUniform(-config.init_range,
                                                   config.init_range)
    return initializer, initializer
  return (keras.initializers.RandomNormal(stddev=config.init_std),
          keras.initializers.RandomNormal(stddev=config.proj_init_std))


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
    float Tensor [min(mem_len, mlen + qlen), batch, d_model], without gradient.
  """
  if mem_len is None or prev_mem is None:
    new_mem = curr_out
  elif mem_len == 0:
    return prev_mem
  else:
    new_mem = tf.concat([prev_mem, curr_out], 0)[-mem_len:]
  return tf.stop_gradient(new_mem)


class VariableScope(keras.layers.Layer):
  """A scope holding named variables, such as `adaptive_softmax/cutoff_0`.

  Its variables are made by `build` from (name, shape, initializer) specs and
  read as attributes of the same name (`scope.lookup_table`).
  """

  def __init__(self, specs, **kwargs):
    """Creates the scope.

    Args:
      specs: list of (name, shape, initializer) of the variables.
      **kwargs: passed to `keras.layers.Layer` (`name`: the scope name).
    """
    super().__init__(**kwargs)
    self.specs = list(specs)

  def build(self, input_shape=None):
    for name, shape, initializer in self.specs:
      setattr(self, name, self.add_weight(name=name, shape=shape,
                                          initializer=initializer))


class RelativeMultiHeadAttention(keras.layers.Layer):
  """The `rel_attn` scope: relative multi-head attention with post-LN.

  Variables: `qkv/kernel` [d_model, 3 * n_head * d_head], `r/kernel`
  [d_model, n_head * d_head], `o/kernel` [n_head * d_head, d_model] (no
  biases) and `LayerNorm/gamma|beta` [d_model].
  """

  def __init__(self, config, name="rel_attn", **kwargs):
    super().__init__(name=name, **kwargs)
    initializer, _ = _initializers(config)
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

    attn_score = (ac + bd) * scale
    attn_mask_t = attn_mask[:, :, None, None]
    attn_score = attn_score * (1 - attn_mask_t) - 1e30 * attn_mask_t

    attn_prob = tf.nn.softmax(attn_score, 1)
    attn_prob = layers.dropout(attn_prob, self.config.dropatt, training)

    attn_vec = tf.einsum("ijbn,jbnd->ibnd", attn_prob, w_head_v)
    attn_vec = tf.reshape(attn_vec, [qlen, bsz, n_head * d_head])

    attn_out = self.o(attn_vec)
    attn_out = layers.dropout(attn_out, self.config.dropout, training)
    return self.layer_norm(attn_out + w)


class PositionwiseFF(keras.layers.Layer):
  """The `ff` scope: ReLU feed-forward with residual and post-LN.

  Variables: `layer_1/kernel|bias` [d_model, d_inner], `layer_2/kernel|bias`
  [d_inner, d_model], `LayerNorm/gamma|beta` [d_model].
  """

  def __init__(self, config, name="ff", **kwargs):
    super().__init__(name=name, **kwargs)
    initializer, _ = _initializers(config)
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


class TransformerXLLayer(keras.layers.Layer):
  """One layer (`layer_<i>`): `rel_attn` then `ff`."""

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
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


class AdaptiveEmbedding(keras.layers.Layer):
  """The `adaptive_embed` scope: token embeddings scaled by sqrt(d_model).

  With div_val 1: `lookup_table` [n_token, d_embed] and, if d_embed !=
  d_model, `proj_W` [d_embed, d_model]. With div_val > 1: per bin i
  `cutoff_<i>/lookup_table` [bin size, d_embed // div_val**i] and
  `cutoff_<i>/proj_W` [that width, d_model].
  """

  def __init__(self, config, name="adaptive_embed", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    initializer, proj_initializer = _initializers(config)
    # With div_val 1, the table (and projection) sit in `adaptive_embed`
    # itself; else each bin has its scope `cutoff_<i>`.
    self.specs = []
    self.bins = []
    if config.div_val == 1:
      self.specs.append(("lookup_table", (config.n_token, config.d_embed),
                         initializer))
      if config.d_embed != config.d_model:
        self.specs.append(("proj_W", (config.d_embed, config.d_model),
                           proj_initializer))
    else:
      ends = [0] + config.cutoffs + [config.n_token]
      for i in range(len(ends) - 1):
        width = config.d_embed // (config.div_val ** i)
        specs = [("lookup_table", (ends[i + 1] - ends[i], width), initializer)]
        if width != config.d_model or config.proj_same_dim:
          specs.append(("proj_W", (width, config.d_model), proj_initializer))
        self.bins.append(VariableScope(specs, name="cutoff_%d" % i))

  def build(self, input_shape=None):
    for name, shape, initializer in self.specs:
      setattr(self, name, self.add_weight(name=name, shape=shape,
                                          initializer=initializer))
    for scope in self.bins:
      scope.build()

  def params(self):
    """The softmax's tied parameters, as the original `shared_params`.

    Returns:
      (tables, projections): with div_val 1 the `lookup_table` variable and
      `proj_W` (or None); else lists of them per bin.
    """
    if self.config.div_val == 1:
      return self.lookup_table, getattr(self, "proj_W", None)
    return ([s.lookup_table for s in self.bins],
            [getattr(s, "proj_W", None) for s in self.bins])

  def call(self, x):
    """Embeds token ids x [qlen, batch] -> float32 [qlen, batch, d_model]."""
    config = self.config
    if config.div_val == 1:
      y = tf.nn.embedding_lookup(self.lookup_table, x)
      if config.d_embed != config.d_model:
        y = tf.einsum("ibe,ed->ibd", y, self.proj_W)
    else:
      ends = [0] + config.cutoffs + [config.n_token]
      x_size = tf.shape(x)
      y = tf.zeros([x_size[0], x_size[1], config.d_model])
      for i, scope in enumerate(self.bins):
        mask = (x >= ends[i]) & (x < ends[i + 1])
        cur_y = tf.nn.embedding_lookup(scope.lookup_table,
                                       tf.boolean_mask(x, mask) - ends[i])
        proj = getattr(scope, "proj_W", None)
        if proj is not None:
          cur_y = tf.einsum("id,de->ie", cur_y, proj)
        y += tf.scatter_nd(tf.where(mask), cur_y,
                           tf.cast(tf.shape(y), tf.int64))
    return y * (config.d_model ** 0.5)


class AdaptiveSoftmax(keras.layers.Layer):
  """The `adaptive_softmax` scope: the output layer, tied to the embedding.

  Without cutoffs: `bias` [n_token]. With cutoffs, per bin i: `cutoff_<i>/b`
  [bin size], `cutoff_<i>/proj` [width, d_model] unless tied or not needed,
  and in bin 0 the cluster logits `cutoff_0/cluster_W` [n_bins - 1, d_embed]
  and `cutoff_0/cluster_b` [n_bins - 1].
  """

  def __init__(self, config, embedding, name="adaptive_softmax", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    self.embedding = embedding
    _, proj_initializer = _initializers(config)
    self.bins = []
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
      self.bins.append(VariableScope(specs, name="cutoff_%d" % i))

  def build(self, input_shape=None):
    if not self.config.cutoffs:
      self.bias = self.add_weight(name="bias", shape=(self.config.n_token,),
                                  initializer="zeros")
    for scope in self.bins:
      scope.build()

  def _bin_params(self, i):
    """(W, b, proj) of bin i, the head (bin 0) with its cluster rows."""
    config = self.config
    tables, projs = self.embedding.params()
    ends = [0] + config.cutoffs + [config.n_token]
    scope = self.bins[i]
    w = tables[ends[i]:ends[i + 1]] if config.div_val == 1 else tables[i]
    b = scope.b
    if config.tie_projs[i]:
      proj = projs if config.div_val == 1 else projs[i]
    else:
      proj = getattr(scope, "proj", None)
    if i == 0:
      w = tf.concat([w, scope.cluster_W], 0)
      b = tf.concat([b, scope.cluster_b], 0)
    return w, b, proj

  def call(self, hidden, target):
    """Per-token negative log-likelihood of the targets.

    Args:
      hidden: float Tensor [qlen, batch, d_model], the last layer's output.
      target: int Tensor [qlen, batch] of token ids.

    Returns:
      float32 Tensor [qlen, batch]: -log p(target).
    """
    config = self.config
    if not config.cutoffs:
      table, proj = self.embedding.params()
      logits = _logit(hidden, table, self.bias, proj)
      return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target,
                                                            logits=logits)
    ends = [0] + config.cutoffs + [config.n_token]
    nll = tf.zeros_like(target, dtype=tf.float32)
    head_logprob = None
    for i in range(len(ends) - 1):
      mask = (target >= ends[i]) & (target < ends[i + 1])
      mask_idx = tf.where(mask)
      cur_target = tf.boolean_mask(target, mask) - ends[i]
      w, b, proj = self._bin_params(i)
      if i == 0:
        head_logprob = tf.nn.log_softmax(_logit(hidden, w, b, proj))
        cur_head_logprob = tf.boolean_mask(head_logprob, mask)
        cur_logprob = _gather_logprob(cur_head_logprob, cur_target)
      else:
        cur_head_logprob = tf.boolean_mask(head_logprob, mask)
        cur_hidden = tf.boolean_mask(hidden, mask)  # [n, d_model]
        tail_logit = tf.squeeze(_logit(cur_hidden[None], w, b, proj), 0)
        tail_logprob = tf.nn.log_softmax(tail_logit)
        # The head's cluster logit of bin i, plus the token within the bin.
        cur_logprob = (cur_head_logprob[:, ends[1] + i - 1] +
                       _gather_logprob(tail_logprob, cur_target))
      nll += tf.scatter_nd(mask_idx, -cur_logprob,
                           tf.cast(tf.shape(nll), tf.int64))
    return nll


def _logit(x, w, b, proj):
  """Logits x [i, b, d_model] -> (x proj^T) w^T + b: [i, b, rows of w]."""
  y = x
  if proj is not None:
    y = tf.einsum("ibd,ed->ibe", y, proj)
  return tf.einsum("ibd,nd->ibn", y, w) + b


def _gather_logprob(logprob, target):
  """logprob [n, classes], target [n] -> logprob[k, target[k]]: [n]."""
  idx = tf.stack([tf.range(tf.shape(logprob)[0]), target], 1)
  return tf.gather_nd(logprob, idx)


class TransformerXL(keras.Model):
  """The Transformer-XL language model (the original `transformer` scope).

  Example:

  ```python
  config = TransformerXLConfig.from_json_file("config.json")
  model = TransformerXL(config)
  bert_tf.checkpoints.load_checkpoint(model, "model.ckpt")
  mems = model.init_mems(batch_size)
  for inputs, targets in segments:  # time-major [tgt_len, batch]
    outputs = model(inputs, mems=mems, targets=targets)
    mems = outputs["new_mems"]
    outputs["loss"]  # mean negative log-likelihood (nats)
  ```
  """

  def __init__(self, config, name="transformer", **kwargs):
    """Creates the model and its variables under the original names.

    Args:
      config: `TransformerXLConfig` (or a dict of its keys).
      name: the root scope, "transformer" as in the original checkpoints.
      **kwargs: passed to `keras.Model`.
    """
    super().__init__(name=name, **kwargs)
    if isinstance(config, dict):
      config = TransformerXLConfig.from_dict(config)
    config.validate()
    self.config = config
    self.adaptive_embed = AdaptiveEmbedding(config)
    self.blocks = [TransformerXLLayer(config, name="layer_%d" % i)
                   for i in range(config.n_layer)]
    self.adaptive_softmax = AdaptiveSoftmax(config, self.adaptive_embed)
    self.build()

  def build(self, input_shape=None):
    config = self.config
    initializer, _ = _initializers(config)
    shape = (config.n_head, config.d_head)
    if config.untie_r:
      shape = (config.n_layer,) + shape
    self.r_w_bias = self.add_weight(name="r_w_bias", shape=shape,
                                    initializer=initializer)
    self.r_r_bias = self.add_weight(name="r_r_bias", shape=shape,
                                    initializer=initializer)
    self.adaptive_embed.build()
    for block in self.blocks:
      block.build((None, None, config.d_model))
    self.adaptive_softmax.build()

  def init_mems(self, batch_size):
    """The first segment's memory: zeros [mem_len, batch, d_model] per layer.

    Args:
      batch_size: int, the batch size of the segments.

    Returns:
      list of `n_layer` float32 Tensors.
    """
    return [tf.zeros([self.config.mem_len, batch_size, self.config.d_model])
            for _ in range(self.config.n_layer)]

  def call(self, inputs, mems=None, targets=None, training=None):
    """Runs one segment.

    Args:
      inputs: int Tensor [qlen, batch] of token ids (time-major).
      mems: list of `n_layer` float Tensors [mlen, batch, d_model] (the
        previous segment's `new_mems`, or `init_mems`), or None (no memory).
      targets: int Tensor [qlen, batch] of the next tokens, or None.
      training: whether dropout is active (the original's `is_training`).

    Returns:
      A dict with `output` [qlen, batch, d_model] (the last layer, after
      dropout), `new_mems` (list of `n_layer` [min(mem_len, klen), batch,
      d_model], no gradient) and, with `targets`, `nll` [qlen, batch] (per
      token, nats) and `loss` (its mean, the original's loss).
    """
    config = self.config
    inputs = tf.convert_to_tensor(inputs)
    if mems is not None and len(mems) != config.n_layer:
      raise ValueError("mems must hold one Tensor per layer (%d), found %d" %
                       (config.n_layer, len(mems)))
    qlen = tf.shape(inputs)[0]
    mlen = tf.shape(mems[0])[0] if mems is not None else 0
    klen = mlen + qlen

    embeddings = self.adaptive_embed(inputs)
    attn_mask = create_mask(qlen, mlen, config.same_length)
    pos_emb = relative_positional_encodings(klen, config.d_model,
                                            config.clamp_len)

    output = layers.dropout(embeddings, config.dropout, training)
    pos_emb = layers.dropout(pos_emb, config.dropout, training)

    new_mems = []
    for i, block in enumerate(self.blocks):
      mem = mems[i] if mems is not None else None
      new_mems.append(cache_memory(output, mem, config.mem_len))
      r_w_bias = self.r_w_bias[i] if config.untie_r else self.r_w_bias
      r_r_bias = self.r_r_bias[i] if config.untie_r else self.r_r_bias
      output = block(output, pos_emb, r_w_bias, r_r_bias, attn_mask, mem,
                     training=training)
    output = layers.dropout(output, config.dropout, training)

    result = {"output": output, "new_mems": new_mems}
    if targets is not None:
      nll = self.adaptive_softmax(output, tf.convert_to_tensor(targets))
      result["nll"] = nll
      result["loss"] = tf.reduce_mean(nll)
    return result

  def get_config(self):
    return {"config": self.config.to_dict(), "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(TransformerXLConfig.from_dict(config["config"]),
               name=config.get("name", "transformer"))
