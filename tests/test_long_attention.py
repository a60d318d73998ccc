"""Memory-bounded (query-chunked) attention gives the numbers of full attention.

And with chunks, training recomputes every Transformer block in the backward
pass (`TransformerLayer` under `tf.recompute_grad`): its gradients must be
those of the block differentiated as it is, and of full attention, for every
variable, the input and TUPE's bias; with dropout on, those of plain autodiff
through the same stateless masks.
"""

import math

import numpy as np
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertModel
from bert_tf.modeling import attention
from bert_tf.modeling import encoder


def _same_weights(layers):
  """Builds `layers` on inputs of width 12; all get the first one's weights."""
  for layer in layers:
    layer.build((None, None, 12))
  for layer in layers[1:]:
    for source, target in zip(layers[0].weights, layer.weights):
      target.assign(source)
  return layers


def _pair(chunk_size, scale_factor=1):
  """Two attention layers with the same weights: full and chunked."""
  return _same_weights([
      attention.SelfAttention(num_heads=3, size_per_head=4, dropout_rate=0.0,
                              initializer_range=0.5,
                              scale_factor=scale_factor, chunk_size=chunk)
      for chunk in (None, chunk_size)])


def _inputs(length, seed=0):
  rng = np.random.RandomState(seed)
  x = rng.normal(size=[2, length, 12]).astype(np.float32)
  mask = np.ones([2, length], np.int32)
  mask[1, length - 5:] = 0
  bias = rng.normal(size=[1, 3, length, length]).astype(np.float32)
  return x, attention.create_attention_mask_from_input_mask(mask), bias


def test_chunked_equals_full_with_mask_and_bias():
  full, chunked = _pair(chunk_size=8, scale_factor=2)
  x, mask, bias = _inputs(37)  # 37 = 4 chunks of 8 and one of 5
  expected = full(x, mask, bias).numpy()
  got = chunked(x, mask, bias).numpy()
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
  # And against the formula in numpy, head by head, for the second sequence.
  q = x[1] @ full.query.kernel.numpy() + full.query.bias.numpy()
  k = x[1] @ full.key.kernel.numpy() + full.key.bias.numpy()
  v = x[1] @ full.value.kernel.numpy() + full.value.bias.numpy()
  adder = (1.0 - mask.numpy()[1, 0, 0]) * -10000.0
  for n in range(3):
    s = slice(4 * n, 4 * n + 4)
    logits = q[:, s] @ k[:, s].T / math.sqrt(2 * 4) + bias[0, n] + adder
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(got[1, :, s], probs @ v[:, s], rtol=0,
                               atol=1e-5)


def test_chunked_equals_full_in_a_graph_with_dynamic_length():
  full, chunked = _pair(chunk_size=16)
  spec = [tf.TensorSpec([None, None, 12]), tf.TensorSpec([None, 1, 1, None])]
  run_full = tf.function(full, input_signature=spec)
  run_chunked = tf.function(chunked, input_signature=spec)
  for length in (5, 16, 17, 50):
    x, mask, _ = _inputs(length, seed=length)
    np.testing.assert_allclose(run_chunked(x, mask), run_full(x, mask),
                               rtol=0, atol=1e-5)


def _assert_gradients_equal(got, expected, name=""):
  """Equal to 1e-5 of the largest |gradient| of the variable (at least 1).

  A bias's gradient sums over every query of the batch (values near 100 at
  50 tokens), where float32 round-off alone is about 1e-5.
  """
  scale = max(1.0, float(np.abs(expected).max()))
  np.testing.assert_allclose(np.asarray(got) / scale,
                             np.asarray(expected) / scale, rtol=0, atol=1e-5,
                             err_msg=name)


def _gradients(layer, x, mask, bias, apply=None):
  """d loss / (weights, x, bias) of a nonlinear loss of the layer's output.

  `apply(x, mask, bias)` computes the output (`layer` itself by default).
  """
  x, bias = tf.convert_to_tensor(x), tf.convert_to_tensor(bias)
  with tf.GradientTape() as tape:
    tape.watch([x, bias])
    loss = tf.reduce_sum(tf.sin((apply or layer)(x, mask, bias)))
  return tape.gradient(loss, layer.trainable_weights + [x, bias])


def test_chunked_gradients_equal_full_gradients():
  full, chunked = _pair(chunk_size=8, scale_factor=2)
  x, mask, bias = _inputs(21)
  names = [w.path for w in full.trainable_weights] + ["x", "bias"]
  for name, a, b in zip(names, _gradients(full, x, mask, bias),
                        _gradients(chunked, x, mask, bias)):
    # The key bias shifts a query's logits alike: its gradient is zero.
    assert name.endswith("key/bias") or np.abs(a).max() > 1e-3, name
    _assert_gradients_equal(b, a, name)


def test_chunked_gradients_equal_full_in_a_graph_with_dynamic_length():
  full, chunked = _pair(chunk_size=16)
  spec = [tf.TensorSpec([None, None, 12]), tf.TensorSpec([None, 1, 1, None]),
          tf.TensorSpec([1, 3, 1, None])]  # a bias with one row for all
  run_full = tf.function(lambda *a: _gradients(full, *a),
                         input_signature=spec)
  run_chunked = tf.function(lambda *a: _gradients(chunked, *a),
                            input_signature=spec)
  for length in (17, 50):
    x, mask, bias = _inputs(length, seed=length)
    bias = bias[:, :, :1]
    for a, b in zip(run_full(x, mask, bias), run_chunked(x, mask, bias)):
      _assert_gradients_equal(b, a)


def test_chunked_attention_compiles_under_xla():
  # Under jit_compile every chunk must have one shape: the queries are padded
  # to whole chunks (21 = 2 chunks of 8 and 5 rows of padding).
  full, chunked = _pair(chunk_size=8, scale_factor=2)
  x, mask, bias = _inputs(21)
  run = tf.function(lambda *a: (chunked(*a), _gradients(chunked, *a)),
                    jit_compile=True)
  context, gradients = run(x, mask, bias)
  np.testing.assert_allclose(context, full(x, mask, bias), rtol=0, atol=1e-5)
  for a, b in zip(_gradients(full, x, mask, bias), gradients):
    _assert_gradients_equal(b, a)


def _chunked_with_dropout_by_autodiff(q, k, v, adder, bias, chunk_size, rate,
                                      seed):
  """`chunked_attention` written plainly, differentiated by TensorFlow.

  Every chunk's mask is drawn for `chunk_size` rows, the last chunk's too
  (`chunked_attention` pads the queries to whole chunks).
  """
  contexts = []
  for index, start in enumerate(range(0, q.shape[2], chunk_size)):
    rows = slice(start, start + chunk_size)
    probs = tf.nn.softmax(tf.matmul(q[:, :, rows], k, transpose_b=True) +
                          bias[:, :, rows] + adder)
    num_rows = probs.shape[2]
    probs = tf.pad(probs, [[0, 0], [0, 0], [0, chunk_size - num_rows], [0, 0]])
    probs = tf.nn.experimental.stateless_dropout(
        probs, rate, tf.random.experimental.stateless_fold_in(seed, index))
    contexts.append(tf.matmul(probs[:, :, :num_rows], v))
  return tf.concat(contexts, 2)


def test_chunked_dropout_mask_is_the_same_in_the_backward_pass():
  rng = np.random.RandomState(3)
  q, k, v = [tf.constant(rng.normal(size=[2, 3, 21, 4]), tf.float32)
             for _ in range(3)]
  bias = tf.constant(rng.normal(size=[1, 3, 21, 21]), tf.float32)
  mask = np.ones([2, 21], np.int32)
  mask[0, 15:] = 0
  adder = attention.attention_mask_adder(
      attention.create_attention_mask_from_input_mask(mask))
  seed = tf.constant([7, 11])
  results = []
  for attend in (attention.chunked_attention,
                 _chunked_with_dropout_by_autodiff):
    with tf.GradientTape() as tape:
      tape.watch([q, k, v, bias])
      context = attend(q, k, v, adder, bias, 8, 0.3, seed)
      loss = tf.reduce_sum(tf.sin(context))
    results.append([context] + tape.gradient(loss, [q, k, v, bias]))
  for a, b in zip(*results):
    _assert_gradients_equal(a, b)
  # The dropout did act: some probabilities (about 30 %) were zeroed.
  no_dropout = attention.chunked_attention(q, k, v, adder, bias, 8)
  assert np.abs(results[0][0] - no_dropout).max() > 0.1


def test_chunked_dropout_draws_a_new_mask_per_call():
  layer = _pair(chunk_size=8)[1]
  layer.dropout_rate = 0.5
  x, mask, bias = _inputs(21)
  first, second = [layer(x, mask, bias, training=True).numpy()
                   for _ in range(2)]
  assert np.abs(first - second).max() > 1e-3
  np.testing.assert_allclose(layer(x, mask, bias, training=False),
                             layer(x, mask, bias), rtol=0, atol=0)


def test_model_with_chunks_and_hierarchical_positions_equals_full(
    fixtures_dir):
  root = fixtures_dir / "original_bert_small"
  base = BertConfig.from_json_file(str(root / "bert_config.json")).to_dict()
  ids = np.random.RandomState(5).randint(0, base["vocab_size"], [2, 300])
  mask = np.ones_like(ids)
  mask[0, 250:] = 0
  inputs = {"input_ids": ids.astype(np.int32),
            "input_mask": mask.astype(np.int32)}
  outputs = []
  for chunk in (None, 64):
    model = BertModel(BertConfig.from_dict(dict(
        base, hierarchical_position_alpha=0.4, attention_chunk_size=chunk)))
    checkpoints.load_checkpoint(model, str(root / "bert_model.ckpt"))
    outputs.append(model(inputs)["sequence_output"].numpy())
  np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-5)
  assert np.abs(outputs[0]).max() > 0.5


class CountingLayer(encoder.TransformerLayer):
  """A `TransformerLayer` that counts how often its block's ops run."""

  runs = 0

  def _block(self, *args, **kwargs):
    self.runs += 1
    return super()._block(*args, **kwargs)


def _block_config(chunk_size, dropout=0.0, **extra):
  """A config of width 12 and 3 heads (as `_inputs`)."""
  return BertConfig.from_dict(dict({
      "vocab_size": 30, "hidden_size": 12, "num_hidden_layers": 2,
      "num_attention_heads": 3, "intermediate_size": 20,
      "max_position_embeddings": 64, "attention_chunk_size": chunk_size,
      "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
      "initializer_range": 0.5}, **extra))


def _block_pair(dropout=0.0):
  """Two Transformer blocks with the same weights: full, and chunks of 8."""
  return _same_weights([CountingLayer(_block_config(chunk, dropout),
                                      name="layer_0") for chunk in (None, 8)])


def _assert_all_gradients_equal(layer, got, expected):
  names = [w.path for w in layer.trainable_weights] + ["x", "bias"]
  assert len(got) == len(expected) == len(names)
  for name, a, b in zip(names, got, expected):
    _assert_gradients_equal(a, b, name)


def _training(layer, **kwargs):
  return lambda *inputs: layer(*inputs, training=True, **kwargs)


def _plain(layer, seed=None):
  """The block's ops differentiated as they are (no recomputation)."""
  return lambda *inputs: layer._block(*inputs, True, seed)


def test_recomputed_block_gradients_equal_plain_and_full_gradients():
  full, chunked = _block_pair()
  x, mask, bias = _inputs(21)  # 2 chunks of 8 and one of 5
  recomputed = _gradients(chunked, x, mask, bias, _training(chunked))
  # The forward pass, then the recomputation in the backward pass.
  assert chunked.runs == 2
  plain = _gradients(chunked, x, mask, bias, _plain(chunked))
  expected = _gradients(full, x, mask, bias, _training(full))
  assert full.runs == 1  # without chunks, nothing is recomputed
  _assert_all_gradients_equal(chunked, recomputed, plain)
  _assert_all_gradients_equal(chunked, recomputed, expected)
  for weight, gradient in zip(full.trainable_weights, expected):
    # The key bias shifts a query's logits alike: its gradient is zero.
    assert (weight.path.endswith("key/bias") or
            np.abs(gradient).max() > 1e-3), weight.path


def test_recomputed_block_dropout_equals_autodiff_through_the_same_masks():
  chunked = _block_pair(dropout=0.3)[1]
  x, mask, bias = _inputs(21, seed=1)
  seed = tf.constant([5, 9])
  _assert_all_gradients_equal(
      chunked,
      _gradients(chunked, x, mask, bias, _training(chunked, dropout_seed=seed)),
      _gradients(chunked, x, mask, bias, _plain(chunked, seed)))
  # The dropouts did act, and a call without a seed draws new masks.
  outputs = [chunked(x, mask, bias, training=training).numpy()
             for training in (False, True, True)]
  assert np.abs(outputs[1] - outputs[0]).max() > 0.1
  assert np.abs(outputs[2] - outputs[1]).max() > 0.1


def test_recomputed_block_gradients_in_a_graph_with_dynamic_length():
  full, chunked = _block_pair()
  dropped = _block_pair(dropout=0.3)[1]
  seed = tf.constant([3, 4])
  spec = [tf.TensorSpec([None, None, 12]), tf.TensorSpec([None, 1, 1, None]),
          tf.TensorSpec([1, 3, None, None])]

  def graph(layer, apply):
    return tf.function(lambda *a: _gradients(layer, *a, apply),
                       input_signature=spec)

  run_full, run_chunked = [graph(layer, _training(layer))
                           for layer in (full, chunked)]
  run_recomputed = graph(dropped, _training(dropped, dropout_seed=seed))
  run_plain = graph(dropped, _plain(dropped, seed))
  for length in (17, 50):
    inputs = _inputs(length, seed=length)
    _assert_all_gradients_equal(chunked, run_chunked(*inputs),
                                run_full(*inputs))
    _assert_all_gradients_equal(dropped, run_recomputed(*inputs),
                                run_plain(*inputs))


def test_recomputed_model_gradients_reach_shared_albert_blocks_and_tupe():
  ids = np.random.RandomState(4).randint(0, 30, [2, 40]).astype(np.int32)
  mask = np.ones_like(ids)
  mask[0, 30:] = 0
  inputs = {"input_ids": ids, "input_mask": mask}
  models, gradients = [], []
  for chunk in (None, 16):
    # ALBERT: 3 layers sharing one group of 2 inner blocks; TUPE's bias.
    models.append(BertModel(_block_config(
        chunk, num_hidden_layers=3, embedding_size=6, num_hidden_groups=1,
        inner_group_num=2, tupe="relative")))
    for source, target in zip(models[0].weights, models[-1].weights):
      target.assign(source)
    with tf.GradientTape() as tape:
      outputs = models[-1](inputs, training=True)
      loss = (tf.reduce_sum(tf.sin(outputs["sequence_output"])) +
              tf.reduce_sum(tf.sin(outputs["pooled_output"])))
    gradients.append(tape.gradient(loss, models[-1].trainable_weights))
  names = [w.path for w in models[0].trainable_weights]
  assert any("inner_group_1" in name for name in names)
  assert any("tupe" in name for name in names)
  for name, a, b in zip(names, *gradients):
    assert a is not None and b is not None, name
    _assert_gradients_equal(tf.convert_to_tensor(b), tf.convert_to_tensor(a),
                            name)
