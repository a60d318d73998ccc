"""Transformer blocks recomputed in the gradient (training with attention chunks).

With `attention_chunk_size` set and `training` on, `TransformerLayer` wraps
its block in `tf.recompute_grad`: the gradients must be those of the block
differentiated as it is (and of full attention), for every variable, the
input and TUPE's bias; with dropout on, those of plain autodiff through the
same stateless masks. Through the whole model, ALBERT's shared blocks and
TUPE's shared bias get the gradients of the model without chunks.
"""

import numpy as np
import tensorflow as tf

from bert_tf.modeling import BertConfig, BertModel
from bert_tf.modeling import attention
from bert_tf.modeling import encoder

WIDTH, HEADS = 12, 3


class CountingLayer(encoder.TransformerLayer):
  """A `TransformerLayer` that counts how often its block's ops run."""

  runs = 0

  def _block(self, *args, **kwargs):
    self.runs += 1
    return super()._block(*args, **kwargs)


def _config(chunk_size, dropout=0.0, **extra):
  return BertConfig.from_dict(dict({
      "vocab_size": 30, "hidden_size": WIDTH, "num_hidden_layers": 2,
      "num_attention_heads": HEADS, "intermediate_size": 20,
      "max_position_embeddings": 64, "attention_chunk_size": chunk_size,
      "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
      "initializer_range": 0.5}, **extra))


def _pair(dropout=0.0):
  """Two blocks with the same weights: full attention, and chunks of 8."""
  blocks = []
  for chunk in (None, 8):
    block = CountingLayer(_config(chunk, dropout), name="layer_0")
    block.build((None, None, WIDTH))
    blocks.append(block)
  for source, target in zip(blocks[0].weights, blocks[1].weights):
    target.assign(source)
  return blocks


def _inputs(length, seed=0):
  """x [2, length, WIDTH], the attention mask (padding), a TUPE-like bias."""
  rng = np.random.RandomState(seed)
  x = rng.normal(size=[2, length, WIDTH]).astype(np.float32)
  mask = np.ones([2, length], np.int32)
  mask[1, length - 5:] = 0
  bias = rng.normal(size=[1, HEADS, length, length]).astype(np.float32)
  return (tf.constant(x), attention.create_attention_mask_from_input_mask(mask),
          tf.constant(bias))


def _gradients(apply, variables, x, mask, bias):
  """d loss / (variables, x, bias) of a nonlinear loss of `apply`'s output."""
  with tf.GradientTape() as tape:
    tape.watch([x, bias])
    loss = tf.reduce_sum(tf.sin(apply(x, mask, bias)))
  return [loss] + tape.gradient(loss, variables + [x, bias])


def _assert_gradients_equal(got, expected, names):
  """Equal to 1e-5 of each gradient's largest value (at least 1)."""
  assert len(got) == len(expected) == len(names)
  for name, a, b in zip(names, got, expected):
    assert a is not None and b is not None, name
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(np.asarray(a) / scale, np.asarray(b) / scale,
                               rtol=0, atol=1e-5, err_msg=name)


def _names(block):
  return ["loss"] + [w.path for w in block.trainable_weights] + ["x", "bias"]


def test_recomputed_gradients_equal_plain_and_full_attention_gradients():
  full, chunked = _pair()
  x, mask, bias = _inputs(21)  # 2 chunks of 8 and one of 5

  def block(layer):
    return lambda *a: layer(*a, training=True)

  recomputed = _gradients(block(chunked), chunked.trainable_weights, x, mask,
                          bias)
  # The forward pass, then the recomputation in the backward pass.
  assert chunked.runs == 2
  plain = _gradients(lambda *a: chunked._block(*a, True),
                     chunked.trainable_weights, x, mask, bias)
  expected = _gradients(block(full), full.trainable_weights, x, mask, bias)
  assert full.runs == 1  # without chunks, nothing is recomputed
  _assert_gradients_equal(recomputed, plain, _names(chunked))
  _assert_gradients_equal(recomputed, expected, _names(chunked))
  for name, gradient in zip(_names(chunked), expected):
    # The key bias shifts a query's logits alike: its gradient is zero.
    assert name.endswith("key/bias") or np.abs(gradient).max() > 1e-3, name


def test_recomputed_dropout_equals_autodiff_through_the_same_masks():
  chunked = _pair(dropout=0.3)[1]
  x, mask, bias = _inputs(21, seed=1)
  seed = tf.constant([5, 9])
  recomputed = _gradients(
      lambda *a: chunked(*a, training=True, dropout_seed=seed),
      chunked.trainable_weights, x, mask, bias)
  plain = _gradients(lambda *a: chunked._block(*a, True, seed),
                     chunked.trainable_weights, x, mask, bias)
  _assert_gradients_equal(recomputed, plain, _names(chunked))
  # The dropouts did act, and a call without a seed draws new masks.
  outputs = [chunked(x, mask, bias, training=training).numpy()
             for training in (False, True, True)]
  assert np.abs(outputs[1] - outputs[0]).max() > 0.1
  assert np.abs(outputs[2] - outputs[1]).max() > 0.1


def test_recomputed_gradients_in_a_graph_with_dynamic_length():
  full, chunked = _pair()
  spec = [tf.TensorSpec([None, None, WIDTH]),
          tf.TensorSpec([None, 1, 1, None]),
          tf.TensorSpec([1, HEADS, None, None])]
  run_full, run_chunked = [
      tf.function(lambda *a, layer=layer: _gradients(
          lambda *b: layer(*b, training=True), layer.trainable_weights, *a),
                  input_signature=spec) for layer in (full, chunked)]
  droppy = _pair(dropout=0.3)[1]
  seed = tf.constant([3, 4])
  run_recomputed, run_plain = [
      tf.function(lambda *a, apply=apply: _gradients(
          apply, droppy.trainable_weights, *a), input_signature=spec)
      for apply in (lambda *b: droppy(*b, training=True, dropout_seed=seed),
                    lambda *b: droppy._block(*b, True, seed))]
  for length in (17, 50):
    inputs = _inputs(length, seed=length)
    _assert_gradients_equal(run_chunked(*inputs), run_full(*inputs),
                            _names(chunked))
    _assert_gradients_equal(run_recomputed(*inputs), run_plain(*inputs),
                            _names(droppy))


def test_model_gradients_reach_shared_albert_blocks_and_tupe():
  ids = np.random.RandomState(4).randint(0, 30, [2, 40]).astype(np.int32)
  mask = np.ones_like(ids)
  mask[0, 30:] = 0
  inputs = {"input_ids": ids, "input_mask": mask}
  results = []
  for chunk in (None, 16):
    # ALBERT: 3 layers sharing one group of 2 inner blocks; TUPE's bias.
    model = BertModel(_config(chunk, num_hidden_layers=3, embedding_size=6,
                              num_hidden_groups=1, inner_group_num=2,
                              tupe="relative"))
    if results:
      for source, target in zip(results[0][0].weights, model.weights):
        target.assign(source)
    with tf.GradientTape() as tape:
      outputs = model(inputs, training=True)
      loss = (tf.reduce_sum(tf.sin(outputs["sequence_output"])) +
              tf.reduce_sum(tf.sin(outputs["pooled_output"])))
    gradients = tape.gradient(loss, model.trainable_weights)
    results.append((model, [loss] + [tf.convert_to_tensor(g)
                                     for g in gradients]))
  names = ["loss"] + [w.path for w in results[0][0].trainable_weights]
  assert any("inner_group_1" in name for name in names)
  assert any("tupe" in name for name in names)
  _assert_gradients_equal(results[1][1], results[0][1], names)
