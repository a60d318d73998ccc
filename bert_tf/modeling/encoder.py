"""The Transformer encoder and `BertModel` (the `bert` scope of the original).

`BertModel(config)` builds its variables when it is constructed, under the
original names (`bert/embeddings/...`, `bert/encoder/layer_<i>/...`,
`bert/pooler/dense/...`), and is called on a dict of `input_ids`, `input_mask`
and `segment_ids`.

An ALBERT config (`config.uses_albert_encoder`) builds the same model with
ALBERT's encoder and names (`bert/encoder/embedding_hidden_mapping_in/...`,
`bert/encoder/transformer/group_<g>/inner_group_<i>/...`, see
`TransformerEncoder`); the embeddings are `embedding_size` wide.

With `tupe` in the config, the encoder also holds the `tupe` scope
(`bert/encoder/tupe/...`, see `tupe.py`): its positional bias is computed once
per call and added to the attention logits of every layer.

With `attention_chunk_size` (the long-input mode), training recomputes each
Transformer block in the backward pass instead of keeping its activations
(`TransformerLayer.call`); without it, the blocks are differentiated as the
original's ops.
"""

import keras
import tensorflow as tf

from bert_tf.modeling import attention
from bert_tf.modeling import embeddings
from bert_tf.modeling import layers
from bert_tf.modeling import naming
from bert_tf.modeling import tupe
from bert_tf.modeling.config import BertConfig


# Where each sub-layer of a Transformer block lives, relative to the block's
# own scope (the last name is the sub-layer's own). BERT: `layer_<i>/...`.
BERT_BLOCK_SCOPES = {
    "self_attention": "attention/self",
    "attention_dense": "attention/output/dense",
    "attention_layer_norm": "attention/output/LayerNorm",
    "intermediate": "intermediate/dense",
    "output_dense": "output/dense",
    "output_layer_norm": "output/LayerNorm",
}

# ALBERT (google-research/albert `attention_ffn_block`), relative to
# `transformer/group_<g>/inner_group_<i>`: the two LayerNorms sit at the block
# level, and the feed-forward output dense inside `ffn_1/intermediate`.
ALBERT_BLOCK_SCOPES = {
    "self_attention": "attention_1/self",
    "attention_dense": "attention_1/output/dense",
    "attention_layer_norm": "LayerNorm",
    "intermediate": "ffn_1/intermediate/dense",
    "output_dense": "ffn_1/intermediate/output/dense",
    "output_layer_norm": "LayerNorm_1",
}


@keras.saving.register_keras_serializable(package="bert_tf")
class TransformerLayer(layers.ConfigSerializable, keras.layers.Layer):
  """One post-LN Transformer block: BERT's `layer_<i>` or ALBERT's `inner_group_<i>`.

  a = LayerNorm(x + dropout(dense(attention(x))))
  y = LayerNorm(a + dropout(dense(hidden_act(dense(a)))))

  as the original `transformer_model` loop body (BERT) and
  `attention_ffn_block` (ALBERT), which compute the same thing under different
  variable names (`scopes`, see `BERT_BLOCK_SCOPES`, `ALBERT_BLOCK_SCOPES`).
  """

  def __init__(self, config, scopes=None, **kwargs):
    """Creates the block.

    Args:
      config: `BertConfig`.
      scopes: dict of sub-layer -> its path inside the block ("a/b/name",
        the last part its own name); `BERT_BLOCK_SCOPES` by default.
      **kwargs: passed to `keras.layers.Layer` (`name`, e.g. "layer_0").
    """
    super().__init__(**kwargs)
    self.config = config
    self.scopes = dict(scopes or BERT_BLOCK_SCOPES)
    self.intermediate_size = config.intermediate_size
    self.dropout_rate = config.hidden_dropout_prob
    init = config.initializer_range
    hidden = config.hidden_size

    def name(sub_layer):
      return self.scopes[sub_layer].rpartition("/")[2]

    self.self_attention = attention.SelfAttention(
        num_heads=config.num_attention_heads,
        size_per_head=config.attention_head_size,
        dropout_rate=config.attention_probs_dropout_prob,
        initializer_range=init,
        scale_factor=1 if config.tupe is None else 2,
        chunk_size=config.attention_chunk_size,
        name=name("self_attention"))
    self.attention_dense = layers.dense_layer(hidden, init,
                                              name=name("attention_dense"))
    self.attention_layer_norm = layers.LayerNorm(
        name=name("attention_layer_norm"))
    self.intermediate = layers.dense_layer(
        config.intermediate_size, init,
        activation=layers.get_activation(config.hidden_act),
        name=name("intermediate"))
    self.output_dense = layers.dense_layer(hidden, init,
                                           name=name("output_dense"))
    self.output_layer_norm = layers.LayerNorm(name=name("output_layer_norm"))

  def build(self, input_shape):
    inner_shape = tuple(input_shape[:-1]) + (self.intermediate_size,)
    for sub_layer, shape in (("self_attention", input_shape),
                             ("attention_dense", input_shape),
                             ("attention_layer_norm", input_shape),
                             ("intermediate", input_shape),
                             ("output_dense", inner_shape),
                             ("output_layer_norm", input_shape)):
      naming.build(getattr(self, sub_layer), shape,
                   self.scopes[sub_layer].rpartition("/")[0])

  def call(self, x, attention_mask=None, attention_bias=None, training=None,
           dropout_seed=None):
    """Applies the block; recomputes it in the gradient for long inputs.

    With `attention_chunk_size` in the config (the long-input mode) and
    `training` not False or None, the block is wrapped in `tf.recompute_grad`:
    the forward pass keeps only its inputs, and the backward pass runs the
    block again (under a tape) to take its gradient, so a training step holds
    one block's activations at a time instead of every block's (about twenty
    hidden-wide vectors per token and block). Its three dropouts (attention
    probabilities and the two hidden ones) are then stateless, split from
    one seed per call (`dropout_seed`, or drawn by `layers.dropout_seed`), so
    the recomputation drops exactly the values the forward pass dropped.
    Without chunks the block is the original's ops, differentiated as they
    are.

    Args:
      x: float Tensor [batch, seq, hidden].
      attention_mask: 0/1 float Tensor [batch, 1, 1, seq] or None.
      attention_bias: float Tensor [1, heads, seq, seq] added to the attention
        logits (TUPE), or None.
      training: whether dropout is active.
      dropout_seed: with chunks, None (a seed drawn per call when the block
        has dropout) or the call's int32 Tensor [2] seed; unused without
        chunks.

    Returns:
      float Tensor [batch, seq, hidden].
    """
    if (self.config.attention_chunk_size is None or training is False or
        training is None):
      return self._block(x, attention_mask, attention_bias, training)
    seed = dropout_seed
    if seed is None and (self.dropout_rate or
                         self.self_attention.dropout_rate):
      seed = layers.dropout_seed(training)

    def block(x, *bias):  # only differentiable Tensors as arguments
      return self._block(x, attention_mask, bias[0] if bias else None,
                         training, seed)

    bias = [] if attention_bias is None else [attention_bias]
    return tf.recompute_grad(block)(x, *bias)

  def _block(self, x, attention_mask, attention_bias, training, seed=None):
    """The block's ops (`call`'s arguments).

    Args:
      x: float Tensor [batch, seq, hidden].
      attention_mask: 0/1 float Tensor [batch, 1, 1, seq] or None.
      attention_bias: float Tensor [1, heads, seq, seq] or None.
      training: whether dropout is active.
      seed: None (stateful dropouts), or an int32 Tensor [2] from which the
        three dropouts' stateless seeds are split.

    Returns:
      float Tensor [batch, seq, hidden].
    """
    seeds = [None] * 3
    if seed is not None:
      seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    context = self.self_attention(x, attention_mask, attention_bias,
                                  training=training, dropout_seed=seeds[0])
    attention_output = self._residual_output(
        self.attention_dense, self.attention_layer_norm, context, x, training,
        seeds[1])
    intermediate = layers.apply_dense(
        layers.to_matrix(attention_output), [self.intermediate],
        layers.training_activation(self.intermediate.activation, training))
    return self._residual_output(self.output_dense, self.output_layer_norm,
                                 intermediate, attention_output, training,
                                 seeds[2])

  def _residual_output(self, dense, layer_norm, x, residual, training,
                       seed):
    """LayerNorm(dropout(dense(x)) + residual), computed on matrices.

    Args:
      dense: the `Dense` layer applied to `x`.
      layer_norm: the `LayerNorm` applied after the residual.
      x: float Tensor [batch, seq, in] or [batch * seq, in].
      residual: float Tensor [batch, seq, hidden].
      training: whether dropout is active.
      seed: None, or the dropout's stateless seed (int32 Tensor [2]).

    Returns:
      float Tensor [batch, seq, hidden].
    """
    y = layers.dropout(layers.apply_dense(layers.to_matrix(x), [dense]),
                       self.dropout_rate, training, seed)
    y = layer_norm(y, layers.to_matrix(residual))
    return tf.reshape(y, tf.shape(residual))

  def get_config(self):
    config = super().get_config()
    config["scopes"] = dict(self.scopes)
    return config


@keras.saving.register_keras_serializable(package="bert_tf")
class TransformerEncoder(layers.ConfigSerializable, keras.layers.Layer):
  """The `encoder` scope: `num_hidden_layers` Transformer layers in a stack.

  BERT: one block per layer, `encoder/layer_<i>`.

  ALBERT (`config.uses_albert_encoder`), as google-research/albert
  `transformer_model`: the embeddings are projected from `embedding_size` to
  `hidden_size` by `encoder/embedding_hidden_mapping_in` (only when the two
  differ); layer l uses the parameters of group
  g = int(l / num_hidden_layers * num_hidden_groups), which are
  `inner_group_num` blocks `encoder/transformer/group_<g>/inner_group_<i>`
  applied one after the other. Only the groups some layer uses exist. As in
  the original, every block's output is one entry of the returned list (so
  num_hidden_layers * inner_group_num entries).

  With `tupe` set, also the `tupe` scope (`tupe.TupePositionBias`).
  """

  def __init__(self, config, name="encoder", **kwargs):
    super().__init__(name=name, **kwargs)
    self.config = config
    self.embedding_hidden_mapping_in = None
    if not config.uses_albert_encoder:
      self.blocks = [TransformerLayer(config, name="layer_%d" % i)
                     for i in range(config.num_hidden_layers)]
      self.block_paths = [""] * config.num_hidden_layers
      # The blocks each layer applies, by index into `blocks`.
      self.layer_blocks = [[i] for i in range(config.num_hidden_layers)]
    else:
      if config.embedding_width != config.hidden_size:
        self.embedding_hidden_mapping_in = layers.dense_layer(
            config.hidden_size, config.initializer_range,
            name="embedding_hidden_mapping_in")
      groups = sorted({config.albert_group_index(l)
                       for l in range(config.num_hidden_layers)})
      inner = config.inner_group_num
      self.blocks, self.block_paths = [], []
      for group in groups:
        for i in range(inner):
          self.blocks.append(TransformerLayer(
              config, ALBERT_BLOCK_SCOPES, name="inner_group_%d" % i))
          self.block_paths.append("transformer/group_%d" % group)
      self.layer_blocks = [
          [groups.index(config.albert_group_index(l)) * inner + i
           for i in range(inner)] for l in range(config.num_hidden_layers)]
    self.tupe = None if config.tupe is None else tupe.TupePositionBias(config)

  def build(self, input_shape):
    hidden_shape = tuple(input_shape[:-1]) + (self.config.hidden_size,)
    if self.embedding_hidden_mapping_in is not None:
      self.embedding_hidden_mapping_in.build(input_shape)
    for block, path in zip(self.blocks, self.block_paths):
      naming.build(block, hidden_shape, path)
    if self.tupe is not None:
      self.tupe.build()

  def call(self, x, attention_mask=None, training=None):
    """Runs the layers.

    Args:
      x: float Tensor [batch, seq, width]: the embeddings (width is
        `embedding_size` for ALBERT).
      attention_mask: 0/1 float Tensor [batch, 1, 1, seq] or None.
      training: whether dropout is active.

    Returns:
      The list of every block's output [batch, seq, hidden], in order.
    """
    attention_bias = None
    if self.tupe is not None:
      attention_bias = tf.cast(self.tupe(x), x.dtype)  # [1, N, S, S]
    if self.embedding_hidden_mapping_in is not None:
      x = self.embedding_hidden_mapping_in(x)  # [B, S, E] -> [B, S, H]
    outputs = []
    for block_indexes in self.layer_blocks:
      for index in block_indexes:
        x = self.blocks[index](x, attention_mask, attention_bias,
                               training=training)
        outputs.append(x)
    return outputs


@keras.saving.register_keras_serializable(package="bert_tf")
class BertModel(layers.ConfigSerializable, keras.Model):
  """BERT ("Bidirectional Encoder Representations from Transformers").

  Example:

  ```python
  config = BertConfig.from_json_file("bert_config.json")
  model = BertModel(config)
  bert_tf.checkpoints.load_checkpoint(model, "bert_model.ckpt")
  outputs = model({"input_ids": ids, "input_mask": mask, "segment_ids": types})
  outputs["pooled_output"]  # [batch, hidden]
  ```
  """

  def __init__(self, config, use_one_hot_embeddings=False, name="bert",
               **kwargs):
    """Creates the model and its variables under the original names.

    Args:
      config: `BertConfig` (or a dict of its keys).
      use_one_hot_embeddings: use a one-hot matmul for the word embeddings
        (the original's TPU option); same numbers as the gather.
      name: the root scope, "bert" as in the original checkpoints.
      **kwargs: passed to `keras.Model`.
    """
    super().__init__(name=name, **kwargs)
    if isinstance(config, dict):
      config = BertConfig.from_dict(config)
    config.validate()
    self.config = config
    self.use_one_hot_embeddings = use_one_hot_embeddings
    self.embeddings = embeddings.BertEmbeddings(
        config, use_one_hot_embeddings=use_one_hot_embeddings)
    self.encoder = TransformerEncoder(config)
    # The original's `pooler/dense`: a Dense layer in the scope `pooler`.
    self.pooler = layers.dense_layer(config.hidden_size,
                                     config.initializer_range,
                                     activation=tf.tanh)
    self.build()

  def build(self, input_shape=None):
    self.embeddings.build()
    self.encoder.build((None, None, self.config.embedding_width))
    naming.build(self.pooler, (None, self.config.hidden_size), "pooler")

  def call(self, inputs, training=None):
    """Encodes a batch.

    Args:
      inputs: a dict with `input_ids` int [batch, seq] and optionally
        `input_mask` (default all ones) and `segment_ids` (default all zeros),
        or the `input_ids` Tensor alone.
      training: whether dropout is active (the original's `is_training`).

    Returns:
      A dict with `sequence_output` [batch, seq, hidden], `pooled_output`
      [batch, hidden], `encoder_outputs` (a list of every layer's output
      [batch, seq, hidden]; for ALBERT every inner block's, as the original)
      and `embedding_output` [batch, seq, embedding width].
    """
    if not isinstance(inputs, dict):
      inputs = {"input_ids": inputs}
    if "input_ids" not in inputs:
      raise ValueError("BertModel inputs need 'input_ids'; found keys %s" %
                       sorted(inputs))
    input_ids = tf.convert_to_tensor(inputs["input_ids"])
    input_mask = inputs.get("input_mask")
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    segment_ids = inputs.get("segment_ids")
    if segment_ids is None:
      segment_ids = tf.zeros_like(input_ids)

    embedding_output = self.embeddings(input_ids, segment_ids,
                                       training=training)
    mask = attention.create_attention_mask_from_input_mask(
        input_mask, embedding_output.dtype)
    encoder_outputs = self.encoder(embedding_output, mask, training=training)
    sequence_output = encoder_outputs[-1]
    # The pooler sees the first token ([CLS]) only.
    pooled_output = layers.apply_dense(sequence_output[:, 0, :],
                                       [self.pooler], self.pooler.activation)
    return {
        "sequence_output": sequence_output,
        "pooled_output": pooled_output,
        "encoder_outputs": encoder_outputs,
        "embedding_output": embedding_output,
    }

  def get_embedding_table(self):
    """The word embedding variable [vocab_size, width] (tied to the MLM output)."""
    return self.embeddings.word_embeddings

  def get_config(self):
    config = super().get_config()
    config["use_one_hot_embeddings"] = self.use_one_hot_embeddings
    return config
