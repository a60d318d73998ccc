"""`TransformerXL`: the language model of kimiyoung/transformer-xl.

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
  own biases and projections, the projections optionally tied), giving
  log-probabilities; the loss (the negative log-likelihood of the targets)
  is the task's, `bert_tf.tasks.transformer_xl_lm`.

Under a mixed precision policy (`trainer.set_dtype_policy("bfloat16")` or
"float16") the variables stay float32 and the layers compute in the compute
dtype, except where precision matters, which stays float32: the attention
scores, mask and softmax, the LayerNorm statistics, the output
log-probabilities and the memory.

Everything is time-major, as in the original: tokens are [len, batch], hidden
states and memories [len, batch, d_model]. Variables are built when the model
is constructed, and their Keras paths are the original names
(`transformer/r_w_bias`, `transformer/layer_0/rel_attn/qkv/kernel`,
`transformer/adaptive_embed/lookup_table`, `transformer/adaptive_softmax/bias`,
...), so `bert_tf.checkpoints.load_checkpoint(model, "model.ckpt")` reads an
original checkpoint.
"""

import keras
import tensorflow as tf

from bert_tf.modeling import layers
from bert_tf.modeling.transformer_xl import layers as xl_layers
from bert_tf.modeling.transformer_xl.config import TransformerXLConfig


@keras.saving.register_keras_serializable(package="bert_tf")
class TransformerXL(xl_layers.XLConfigSerializable, keras.Model):
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
    outputs["target_log_probs"]  # [tgt_len, batch], log p(target) (nats)
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
    self.adaptive_embed = xl_layers.AdaptiveEmbedding(config)
    self.blocks = [xl_layers.TransformerXLLayer(config, name="layer_%d" % i)
                   for i in range(config.n_layer)]
    self.adaptive_softmax = xl_layers.AdaptiveSoftmax(config,
                                                      self.adaptive_embed)
    self.build()

  def build(self, input_shape=None):
    config = self.config
    initializer, _ = config.initializers()
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
      targets: int Tensor [qlen, batch] of the next tokens whose
        log-probabilities to return, or None (those of every token).
      training: whether dropout is active (the original's `is_training`).

    Returns:
      A dict with `output` [qlen, batch, d_model] (the last layer, after
      dropout, in the compute dtype), `new_mems` (list of `n_layer` float32
      [min(mem_len, klen), batch, d_model], no gradient) and the float32
      log-probabilities of the next token: with `targets`,
      `target_log_probs` [qlen, batch] (log p(target), nats; the adaptive
      softmax computes only the bins the targets fall in), without,
      `log_probs` [qlen, batch, n_token].
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
    attn_mask = xl_layers.create_mask(qlen, mlen, config.same_length)
    pos_emb = tf.cast(xl_layers.relative_positional_encodings(
        klen, config.d_model, config.clamp_len), self.compute_dtype)

    output = layers.dropout(embeddings, config.dropout, training)
    pos_emb = layers.dropout(pos_emb, config.dropout, training)

    new_mems = []
    for i, block in enumerate(self.blocks):
      mem = mems[i] if mems is not None else None
      new_mems.append(xl_layers.cache_memory(output, mem, config.mem_len))
      r_w_bias = self.r_w_bias[i] if config.untie_r else self.r_w_bias
      r_r_bias = self.r_r_bias[i] if config.untie_r else self.r_r_bias
      output = block(output, pos_emb, r_w_bias, r_r_bias, attn_mask, mem,
                     training=training)
    output = layers.dropout(output, config.dropout, training)

    result = {"output": output, "new_mems": new_mems}
    if targets is None:
      result["log_probs"] = self.adaptive_softmax(output)
    else:
      result["target_log_probs"] = self.adaptive_softmax(
          output, tf.convert_to_tensor(targets))
    return result
