"""Memory-bounded (query-chunked) attention gives the numbers of full attention."""

import math

import numpy as np
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertModel
from bert_tf.modeling import attention


def _pair(chunk_size, scale_factor=1):
  """Two attention layers with the same weights: full and chunked."""
  layers = []
  for chunk in (None, chunk_size):
    layer = attention.SelfAttention(num_heads=3, size_per_head=4,
                                    dropout_rate=0.0, initializer_range=0.5,
                                    scale_factor=scale_factor, chunk_size=chunk)
    layer.build((None, None, 12))
    layers.append(layer)
  for source, target in zip(layers[0].weights, layers[1].weights):
    target.assign(source)
  return layers


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


def _gradients(layer, x, mask, bias):
  """d loss / (weights, x, bias) of a nonlinear loss of the layer's output."""
  x, bias = tf.convert_to_tensor(x), tf.convert_to_tensor(bias)
  with tf.GradientTape() as tape:
    tape.watch([x, bias])
    loss = tf.reduce_sum(tf.sin(layer(x, mask, bias)))
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


def _chunked_with_dropout_by_autodiff(q, k, v, adder, bias, chunk_size, rate,
                                      seed):
  """`chunked_attention` written plainly, differentiated by TensorFlow."""
  contexts = []
  for index, start in enumerate(range(0, q.shape[2], chunk_size)):
    rows = slice(start, start + chunk_size)
    probs = tf.nn.softmax(tf.matmul(q[:, :, rows], k, transpose_b=True) +
                          bias[:, :, rows] + adder)
    probs = tf.nn.experimental.stateless_dropout(
        probs, rate, tf.random.experimental.stateless_fold_in(seed, index))
    contexts.append(tf.matmul(probs, v))
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
