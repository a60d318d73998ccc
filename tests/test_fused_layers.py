"""The fast paths of the layers: the same numbers as the original formulas.

float32 keeps the original's forward ops (bitwise) with a closed-form
LayerNorm gradient; a reduced-precision compute dtype (mixed_bfloat16) runs
LayerNorm and the training GELU as XLA kernels in float32 and the inference
GELU fused into the matmul, and the original BERT checkpoint still loads.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertClassifier
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertModel
from bert_tf.modeling import BertPretrainer
from bert_tf.modeling import BertSquad
from bert_tf.modeling import layers
from bert_tf.tasks import pretraining


def _original_layer_norm(x, gamma, beta):
  """The original's `layer_norm` ops (moments + batch_normalization)."""
  mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
  return tf.nn.batch_normalization(x, mean, variance, offset=beta,
                                   scale=gamma, variance_epsilon=1e-12)


def _original_gelu(x):
  cdf = 0.5 * (1.0 + tf.tanh(
      (math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3)))))
  return x * cdf


def _layer_norm_layer(width, seed=0, dtype=None):
  rng = np.random.RandomState(seed)
  layer = layers.LayerNorm(dtype=dtype)
  layer.build((None, width))
  layer.gamma.assign(rng.normal(1.0, 0.3, [width]).astype(np.float32))
  layer.beta.assign(rng.normal(0.0, 0.3, [width]).astype(np.float32))
  return layer


def _inputs(shape, seed=1):
  rng = np.random.RandomState(seed)
  return (rng.normal(0.5, 2.0, shape).astype(np.float32),
          rng.normal(0.0, 1.0, shape).astype(np.float32))


def test_float32_layer_norm_is_the_original_forward_and_gradient():
  layer = _layer_norm_layer(24)
  x, residual = _inputs([3, 5, 24])
  x, residual = tf.constant(x), tf.constant(residual)
  weights = [layer.gamma, layer.beta]
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x, residual])
    ours = layer(x, residual)
    original = _original_layer_norm(x + residual, layer.gamma, layer.beta)
    loss_ours = tf.reduce_sum(tf.sin(ours))
    loss_original = tf.reduce_sum(tf.sin(original))
  np.testing.assert_array_equal(ours.numpy(), original.numpy())
  got = tape.gradient(loss_ours, [x, residual] + weights)
  expected = tape.gradient(loss_original, [x, residual] + weights)
  for a, b, name in zip(got, expected, ("x", "residual", "gamma", "beta")):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


def test_bfloat16_layer_norm_kernel_matches_float32_math():
  layer = _layer_norm_layer(64, dtype="mixed_bfloat16")
  x, residual = _inputs([2, 7, 64], seed=2)
  # Inputs exactly representable in bfloat16, so both sides see the same.
  x16 = tf.cast(x, tf.bfloat16)
  r16 = tf.cast(residual, tf.bfloat16)
  x32, r32 = tf.cast(x16, tf.float32), tf.cast(r16, tf.float32)
  weights = [layer.gamma, layer.beta]
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x16, r16, x32, r32])
    ours = layer(x16, r16)
    expected = _original_layer_norm(x32 + r32, layer.gamma, layer.beta)
    upstream = tf.sin(tf.range(64, dtype=tf.float32))
    loss_ours = tf.reduce_sum(tf.cast(ours, tf.float32) * upstream)
    loss_expected = tf.reduce_sum(expected * upstream)
  assert ours.dtype == tf.bfloat16
  # bfloat16 keeps 8 significant bits: one rounding of the output.
  np.testing.assert_allclose(tf.cast(ours, tf.float32), expected,
                             rtol=2 ** -8, atol=2e-2)
  got = tape.gradient(loss_ours, [x16, r16] + weights)
  want = tape.gradient(loss_expected, [x32, r32] + weights)
  np.testing.assert_allclose(tf.cast(got[0], tf.float32), want[0], rtol=2e-2,
                             atol=2e-2)
  np.testing.assert_array_equal(got[0].numpy(), got[1].numpy())
  # gamma and beta gradients: float32 sums of the bfloat16 upstream gradient.
  np.testing.assert_allclose(got[2], want[2], rtol=1e-2, atol=1e-2)
  np.testing.assert_allclose(got[3], want[3], rtol=1e-2, atol=1e-2)


def test_gelu_float32_is_the_original_and_bfloat16_paths_agree():
  x = tf.constant(np.linspace(-6.0, 6.0, 4001), tf.float32)
  np.testing.assert_array_equal(layers.gelu(x), _original_gelu(x))
  np.testing.assert_array_equal(layers.gelu(x, training=True),
                                _original_gelu(x))
  x16 = tf.cast(x, tf.bfloat16)
  x64 = tf.cast(x16, tf.float64)
  with tf.GradientTape() as tape:
    tape.watch(x64)
    exact = _original_gelu(x64)
  slope = tape.gradient(exact, x64)  # float64 autodiff of the original ops
  # training: the XLA kernel, float32 math rounded once to bfloat16; else
  # tf.nn.gelu, whose ops run in bfloat16 when not fused (eagerly, as here).
  for training, atol in ((False, 1e-2), (True, 1e-3)):
    with tf.GradientTape() as tape:
      tape.watch(x16)
      y = layers.gelu(x16, training=training)
    assert y.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y, tf.float64), exact, rtol=2 ** -8,
                               atol=atol, err_msg=str(training))
    grad = tf.cast(tape.gradient(y, x16), tf.float64)
    np.testing.assert_allclose(grad, slope, rtol=2e-2, atol=2e-2,
                               err_msg=str(training))


@pytest.fixture
def mixed_bfloat16():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  yield
  keras.mixed_precision.set_global_policy("float32")


def test_bfloat16_model_follows_float32_model(fixtures_dir, mixed_bfloat16):
  root = fixtures_dir / "original_bert_small"
  config = BertConfig.from_json_file(str(root / "bert_config.json")).to_dict()
  # Without dropout, so that training=True (the fused training GELU) can be
  # compared with the float32 model too.
  config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  config = BertConfig.from_dict(config)
  model16 = BertModel(config)
  checkpoints.load_checkpoint(model16, str(root / "bert_model.ckpt"))
  keras.mixed_precision.set_global_policy("float32")
  model32 = BertModel(config)
  checkpoints.load_checkpoint(model32, str(root / "bert_model.ckpt"))
  io = np.load(root / "io.npz")
  inputs = {k: io[k] for k in ("input_ids", "input_mask", "segment_ids")}
  expected = model32(inputs)["sequence_output"].numpy()
  np.testing.assert_allclose(expected, io["sequence_output"], atol=1e-5)
  for training in (False, True):
    with tf.GradientTape() as tape:
      out = model16(inputs, training=training)["sequence_output"]
      loss = tf.reduce_mean(tf.square(tf.cast(out, tf.float32)))
    assert out.dtype == tf.bfloat16
    got = tf.cast(out, tf.float32).numpy()
    # LayerNorm outputs are O(1); bfloat16 matmuls over 3 layers.
    assert np.abs(got - expected).max() < 0.15
    assert np.abs(got - expected).mean() < 0.02
    variables = (model16.embeddings.trainable_variables +
                 model16.encoder.trainable_variables)
    grads = tape.gradient(loss, variables)
    assert all(g is not None and np.isfinite(tf.convert_to_tensor(g)).all()
               for g in grads)


def test_bfloat16_pretrainer_and_heads_give_float32_outputs(fixtures_dir,
                                                            mixed_bfloat16):
  """Under a global mixed_bfloat16 policy every head returns float32 logits.

  The heads add their float32 `output_bias` to logits cast to float32; the
  bias must not be autocast to bfloat16 when read in the call.
  """
  root = fixtures_dir / "original_bert_small"
  config = BertConfig.from_json_file(str(root / "bert_config.json"))
  io = np.load(root / "io.npz")
  features = {k: io[k] for k in ("input_ids", "input_mask", "segment_ids",
                                 "masked_lm_positions", "masked_lm_ids",
                                 "masked_lm_weights", "next_sentence_labels")}
  pretrainer = BertPretrainer(config)
  checkpoints.load_checkpoint(pretrainer, str(root / "bert_model.ckpt"))
  out = pretraining.run_with_losses(pretrainer, features, training=False)
  for key in ("mlm_log_probs", "nsp_log_probs", "mlm_loss", "nsp_loss",
              "total_loss"):
    assert out[key].dtype == tf.float32, key
  # bfloat16 matmuls over 3 layers and a 413-way softmax.
  np.testing.assert_allclose(out["mlm_log_probs"], io["mlm_log_probs"],
                             atol=0.15)
  np.testing.assert_allclose(out["nsp_log_probs"], io["nsp_log_probs"],
                             atol=0.05)
  np.testing.assert_allclose(out["total_loss"], io["total_loss"], rtol=0.02)
  inputs = {k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}
  classifier = BertClassifier(config, num_labels=3)
  assert classifier(inputs)["logits"].dtype == tf.float32
  squad = BertSquad(config)
  assert squad(inputs)["start_logits"].dtype == tf.float32


def test_gelu_float32_training_gradient_equals_the_original_ops():
  x = tf.constant(np.linspace(-6.0, 6.0, 4001), tf.float32)
  slopes = []
  for gelu in (lambda x: layers.gelu(x, training=True), _original_gelu):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.sin(gelu(x)))
    slopes.append(tape.gradient(loss, x))
  # In the negative tail both are float32 round-off of 1 - tanh^2 (a few
  # 1e-6; below about -4.8 the original's ops round the slope to 0).
  np.testing.assert_allclose(slopes[0], slopes[1], rtol=0, atol=1e-5)
