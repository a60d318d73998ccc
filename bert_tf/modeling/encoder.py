"""The Transformer encoder and `BertModel` (the `bert` scope of the original).

`BertModel(config)` builds its variables when it is constructed, under the
original names (`bert/embeddings/...`, `bert/encoder/layer_<i>/...`,
`bert/pooler/dense/...`), and is called on a dict of `input_ids`, `input_mask`
and `segment_ids`.

With `tupe` in the config, the encoder also holds the `tupe` scope
(`bert/encoder/tupe/...`, see `tupe.py`): its positional bias is computed once
per call and added to the attention logits of every layer.
"""

import keras
import tensorflow as tf

from bert_tf.modeling import attention
from bert_tf.modeling import embeddings
from bert_tf.modeling import layers
from bert_tf.modeling import tupe
from bert_tf.modeling.config import BertConfig


class AttentionBlock(keras.layers.Layer):
  """The `attention` scope: `self` (multi-head attention) then `output`."""

  def __init__(self, config, name="attention", **kwargs):
    super().__init__(name=name, **kwargs)
    self.self_attention = attention.SelfAttention(
        num_heads=config.num_attention_heads,
        size_per_head=config.attention_head_size,
        dropout_rate=config.attention_probs_dropout_prob,
        initializer_range=config.initializer_range,
        scale_factor=1 if config.tupe is None else 2,
        chunk_size=config.attention_chunk_size)
    self.output_block = layers.ResidualOutput(
        config.hidden_size, config.hidden_dropout_prob,
        config.initializer_range, name="output")

  def build(self, input_shape):
    self.self_attention.build(input_shape)
    self.output_block.build(input_shape)

  def call(self, x, attention_mask=None, attention_bias=None, training=None):
    """x [batch, seq, hidden] -> LayerNorm(x + dropout(dense(attention(x))))."""
    context = self.self_attention(x, attention_mask, attention_bias,
                                  training=training)
    return self.output_block(context, x, training=training)


class TransformerLayer(keras.layers.Layer):
  """One post-LN Transformer block (the scope `layer_<i>`).

  attention -> intermediate dense with `hidden_act` -> output dense, dropout,
  residual and LayerNorm, as the original `transformer_model` loop body.
  """

  def __init__(self, config, **kwargs):
    """Creates the block.

    Args:
      config: `BertConfig`.
      **kwargs: passed to `keras.layers.Layer` (`name`, e.g. "layer_0").
    """
    super().__init__(**kwargs)
    self.attention = AttentionBlock(config)
    self.intermediate = layers.ScopedDense(
        config.intermediate_size, config.hidden_act,
        config.initializer_range, name="intermediate")
    self.output_block = layers.ResidualOutput(
        config.hidden_size, config.hidden_dropout_prob,
        config.initializer_range, name="output")
    self.intermediate_size = config.intermediate_size

  def build(self, input_shape):
    self.attention.build(input_shape)
    self.intermediate.build(input_shape)
    self.output_block.build(tuple(input_shape[:-1]) + (self.intermediate_size,))

  def call(self, x, attention_mask=None, attention_bias=None, training=None):
    """Applies the block.

    Args:
      x: float Tensor [batch, seq, hidden].
      attention_mask: 0/1 float Tensor [batch, 1, 1, seq] or None.
      attention_bias: float Tensor [1, heads, seq, seq] added to the attention
        logits (TUPE), or None.
      training: whether dropout is active.

    Returns:
      float Tensor [batch, seq, hidden].
    """
    attention_output = self.attention(x, attention_mask, attention_bias,
                                      training=training)
    intermediate = self.intermediate(attention_output, training=training)
    return self.output_block(intermediate, attention_output, training=training)


class TransformerEncoder(keras.layers.Layer):
  """The `encoder` scope: `num_hidden_layers` Transformer blocks in a stack.

  With `tupe` set, also the `tupe` scope (`tupe.TupePositionBias`).
  """

  def __init__(self, config, name="encoder", **kwargs):
    super().__init__(name=name, **kwargs)
    self.blocks = [TransformerLayer(config, name="layer_%d" % i)
                   for i in range(config.num_hidden_layers)]
    self.tupe = None if config.tupe is None else tupe.TupePositionBias(config)

  def build(self, input_shape):
    for block in self.blocks:
      block.build(input_shape)
    if self.tupe is not None:
      self.tupe.build()

  def call(self, x, attention_mask=None, training=None):
    """Runs every block; returns the list of each block's output [B, S, H]."""
    attention_bias = None
    if self.tupe is not None:
      attention_bias = tf.cast(self.tupe(x), x.dtype)  # [1, N, S, S]
    outputs = []
    for block in self.blocks:
      x = block(x, attention_mask, attention_bias, training=training)
      outputs.append(x)
    return outputs


class BertModel(keras.Model):
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
    self.pooler = layers.ScopedDense(config.hidden_size, "tanh",
                                     config.initializer_range, name="pooler")
    self.build()

  def build(self, input_shape=None):
    shape = (None, None, self.config.hidden_size)
    self.embeddings.build()
    self.encoder.build(shape)
    self.pooler.build((None, self.config.hidden_size))

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
      [batch, seq, hidden]) and `embedding_output` [batch, seq, hidden].
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
    pooled_output = self.pooler(sequence_output[:, 0, :])
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
    return {"config": self.config.to_dict(),
            "use_one_hot_embeddings": self.use_one_hot_embeddings,
            "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
