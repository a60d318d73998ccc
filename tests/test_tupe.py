"""TUPE: the positional bias, [CLS] untying, T5 buckets, and checkpoint names."""

import math

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertModel
from bert_tf.modeling import tupe

TUPE_NAMES = [
    "bert/encoder/tupe/LayerNorm/beta", "bert/encoder/tupe/LayerNorm/gamma",
    "bert/encoder/tupe/key/bias", "bert/encoder/tupe/key/kernel",
    "bert/encoder/tupe/position_embeddings", "bert/encoder/tupe/query/bias",
    "bert/encoder/tupe/query/kernel"]


def _config(**extra):
  return BertConfig.from_dict(dict({
      "vocab_size": 20, "hidden_size": 4, "num_hidden_layers": 2,
      "num_attention_heads": 2, "intermediate_size": 8,
      "max_position_embeddings": 6, "hidden_dropout_prob": 0.0,
      "attention_probs_dropout_prob": 0.0}, **extra))


# Distance d = query - key (the negated relative position) -> T5 bucket with 32
# buckets and max distance 128, from the T5 definition by hand: d < 8 exact;
# else 8 + floor(8 * ln(d / 8) / ln(16)) = 8 + floor(2 * log2(d / 8)), at most
# 15; keys to the right of the query (d < 0) add 16.
T5_BUCKETS = {
    0: 0, 1: 1, 7: 7, 8: 8, 11: 8, 12: 9, 15: 9, 16: 10, 22: 10, 23: 11,
    32: 12, 45: 12, 46: 13, 64: 14, 90: 14, 91: 15, 128: 15, 1000: 15,
    -1: 17, -7: 23, -8: 24, -12: 25, -16: 26, -23: 27, -32: 28, -64: 30,
    -91: 31, -500: 31,
}


def test_bucket_function_on_known_values():
  distances = np.array(sorted(T5_BUCKETS))
  buckets = tupe.relative_position_bucket(-distances, num_buckets=32,
                                          max_distance=128)
  assert dict(zip(distances.tolist(), buckets.tolist())) == T5_BUCKETS
  # 8 buckets up to distance 16: 2 exact, then 2 + floor(2 ln(d/2) / ln 8).
  small = tupe.relative_position_bucket(-np.arange(-8, 9), 8, 16)
  assert small.tolist() == [7, 7, 7, 6, 6, 6, 6, 5, 0, 1, 2, 2, 2, 2, 3, 3, 3]


def _absolute_reference(layer, seq_length):
  """The paper's formula in float64 numpy, with the official [CLS] rows."""
  p = layer.position_embeddings.numpy().astype(np.float64)[:seq_length + 1]
  mean = p.mean(-1, keepdims=True)
  normed = (p - mean) / np.sqrt(((p - mean) ** 2).mean(-1, keepdims=True) +
                                1e-12)
  normed = (normed * layer.layer_norm.gamma.numpy() +
            layer.layer_norm.beta.numpy())
  q = normed @ layer.query.kernel.numpy() + layer.query.bias.numpy()
  k = normed @ layer.key.kernel.numpy() + layer.key.bias.numpy()
  heads, size = layer.num_heads, layer.size_per_head
  result = np.zeros([heads, seq_length, seq_length])
  for n in range(heads):
    qn, kn = q[:, n * size:(n + 1) * size], k[:, n * size:(n + 1) * size]
    for i in range(seq_length):
      for j in range(seq_length):
        if i == 0:  # [CLS] to others: row 0 of the table with itself
          a, b = 0, 0
        elif j == 0:  # others to [CLS]: row 1 (position 0) with itself
          a, b = 1, 1
        else:
          a, b = i + 1, j + 1
        result[n, i, j] = qn[a] @ kn[b] / math.sqrt(2 * size)
  return result


def test_absolute_bias_on_a_hand_built_table():
  layer = BertModel(_config(tupe="absolute")).encoder.tupe
  # LN(+-1 rows of mean 0) is the row itself; U_Q = diag(1, 2, 1, 3) with bias
  # [1, 0, 0, 1], U_K = identity without bias; heads are dims (0, 1), (2, 3).
  # Rows 0-3 serve a 3-token sequence: row 0 [CLS] to others, row k + 1
  # position k (row 1 also others to [CLS]).
  layer.position_embeddings[:4].assign(np.array([
      [-1, 1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1], [1, -1, 1, -1]],
      np.float32))
  layer.query.kernel.assign(np.diag([1.0, 2.0, 1.0, 3.0]))
  layer.query.bias.assign([1.0, 0.0, 0.0, 1.0])
  layer.key.kernel.assign(np.eye(4))
  layer.key.bias.assign(np.zeros(4))
  bias = layer(tf.zeros([1, 3, 4])).numpy()
  assert bias.shape == (1, 2, 3, 3)
  # q rows: [0, 2, 1, -2], [2, 2, -1, -2], [2, -2, -1, 4], [2, -2, 1, -2];
  # k rows = table rows; entry = q_a . k_b over the head's dims / sqrt(4).
  # head 0: [CLS] row = q0.k0 = (0 + 2) / 2 = 1; [CLS] column = q1.k1 =
  #   (2 + 2) / 2 = 2; (1, 1) = q2.k2 = (2 + 2) / 2 = 2; (1, 2) = q2.k3 = 2;
  #   (2, 1) = q3.k2 = (2 + 2) / 2 = 2; (2, 2) = q3.k3 = 2.
  # head 1: [CLS] row = (1 * 1 + -2 * -1) / 2 = 1.5; [CLS] column =
  #   (-1 * -1 + -2 * -1) / 2 = 1.5; (1, 1) = (1 + 4) / 2 = 2.5;
  #   (1, 2) = q2.k3 = (-1 * 1 + 4 * -1) / 2 = -2.5; (2, 1) = q3.k2 =
  #   (1 * -1 + -2 * 1) / 2 = -1.5; (2, 2) = (1 + 2) / 2 = 1.5.
  expected = np.array([[[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                       [[1.5, 1.5, 1.5], [1.5, 2.5, -2.5], [1.5, -1.5, 1.5]]])
  np.testing.assert_allclose(bias[0], expected, rtol=0, atol=1e-5)


def test_absolute_bias_matches_the_formula_with_random_weights():
  layer = BertModel(_config(tupe="absolute")).encoder.tupe
  layer.layer_norm.gamma.assign([0.5, 1.5, -1.0, 2.0])
  layer.layer_norm.beta.assign([0.1, -0.2, 0.3, 0.0])
  layer.query.bias.assign([0.3, -0.1, 0.2, 0.05])
  layer.key.bias.assign([-0.2, 0.4, 0.1, -0.3])
  for length in (1, 2, 6):
    np.testing.assert_allclose(layer(tf.zeros([1, length, 4]))[0],
                               _absolute_reference(layer, length), rtol=0,
                               atol=1e-6)


def test_relative_bias_with_cls_buckets():
  config = _config(tupe="relative", tupe_num_buckets=8, tupe_max_distance=16)
  layer = BertModel(config).encoder.tupe
  # Zero projections: the absolute term is 0 everywhere.
  for dense in (layer.query, layer.key):
    dense.kernel.assign(np.zeros([4, 4]))
    dense.bias.assign(np.zeros(4))
  # Bucket b of head n holds 100 n + b: the result shows the buckets.
  layer.relative_attention_bias.assign(
      np.arange(9)[:, None] + 100.0 * np.arange(2)[None, :])
  bias = layer(tf.zeros([1, 5, 4])).numpy()
  # Row 0 ([CLS] to others) is bucket 8 / 2 = 4, column 0 (others to [CLS])
  # bucket 8; elsewhere the T5 bucket of key - query (8 buckets, distance 16).
  buckets = np.array([[4, 4, 4, 4, 4],
                      [8, 0, 5, 6, 6],
                      [8, 1, 0, 5, 6],
                      [8, 2, 1, 0, 5],
                      [8, 2, 2, 1, 0]])
  np.testing.assert_array_equal(bias[0], np.stack([buckets, buckets + 100]))


def test_relative_adds_to_the_absolute_term():
  relative = BertModel(_config(tupe="relative")).encoder.tupe
  values = np.random.RandomState(3).normal(size=[33, 2]).astype(np.float32)
  relative.relative_attention_bias.assign(values)
  buckets = tupe.relative_position_bucket(
      np.arange(6)[None, :] - np.arange(6)[:, None])
  buckets[:, 0] = 32
  buckets[0, :] = 16
  expected = (_absolute_reference(relative, 6) +
              np.transpose(values[buckets], [2, 0, 1]))
  np.testing.assert_allclose(relative(tf.zeros([1, 6, 4]))[0], expected,
                             rtol=0, atol=1e-5)


def test_model_scales_word_term_and_adds_bias_in_every_layer():
  config = _config(tupe="absolute", num_hidden_layers=1)
  model = BertModel(config)
  assert model.encoder.blocks[0].self_attention.scale_factor == 2
  attention = model.encoder.blocks[0].self_attention
  ids = np.array([[3, 7, 1, 9, 4]], np.int32)
  out = model(ids)
  # Recompute layer 0's attention context from its input in numpy.
  x = out["embedding_output"].numpy()[0]
  q = x @ attention.query.kernel.numpy() + attention.query.bias.numpy()
  k = x @ attention.key.kernel.numpy() + attention.key.bias.numpy()
  v = x @ attention.value.kernel.numpy() + attention.value.bias.numpy()
  bias = _absolute_reference(model.encoder.tupe, 5)
  context = []
  for n in range(2):
    s = slice(2 * n, 2 * n + 2)
    logits = q[:, s] @ k[:, s].T / math.sqrt(2 * 2) + bias[n]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context.append(probs @ v[:, s])
  got = attention(tf.constant(x[None]),
                  attention_bias=model.encoder.tupe(tf.constant(x[None])))
  np.testing.assert_allclose(got[0], np.concatenate(context, -1), rtol=0,
                             atol=1e-5)
  # No position vector goes into the embeddings: LN(word + type) only.
  e = model.embeddings
  summed = (e.word_embeddings.numpy()[ids[0]] +
            e.token_type_embeddings.numpy()[0])
  normed = (summed - summed.mean(-1, keepdims=True)) / np.sqrt(
      summed.var(-1, keepdims=True) + 1e-12)
  np.testing.assert_allclose(x, normed, rtol=0, atol=1e-5)


def test_plain_checkpoint_reports_tupe_variables_as_new(fixtures_dir):
  root = fixtures_dir / "original_bert_small"
  base = BertConfig.from_json_file(str(root / "bert_config.json")).to_dict()
  for kind, extra_names in (("absolute", []),
                            ("relative",
                             ["bert/encoder/tupe/relative_attention_bias"])):
    model = BertModel(BertConfig.from_dict(dict(base, tupe=kind)))
    report = checkpoints.load_checkpoint(model, str(root / "bert_model.ckpt"))
    assert sorted(report.missing) == sorted(TUPE_NAMES + extra_names)
    assert "bert/embeddings/position_embeddings" in report.unexpected
    assert len(report.loaded) == 54
    assert "Newly initialized (not in the checkpoint): bert/encoder/tupe/" in (
        report.summary())
    shapes = {v.path: tuple(v.shape) for v in model.weights}
    assert shapes["bert/encoder/tupe/position_embeddings"] == (41, 48)
    assert shapes["bert/encoder/tupe/query/kernel"] == (48, 48)
    if kind == "relative":
      assert shapes["bert/encoder/tupe/relative_attention_bias"] == (33, 4)


def test_tupe_sequence_limit_and_config_errors():
  model = BertModel(_config(tupe="absolute"))
  with pytest.raises(ValueError, match=r"Sequence length 7 is longer than "
                     r"max_position_embeddings \(6\) of the BERT config "
                     r"\(the rows of TUPE's position table\)"):
    model(np.ones([1, 7], np.int32))
  for change, message in (
      ({"tupe": "rotary"}, r"field 'tupe' must be null, \"absolute\" or "
                           r"\"relative\", found 'rotary'"),
      ({"tupe": "relative", "tupe_num_buckets": 31},
       r"'tupe_num_buckets' must be an even int >= 4"),
      ({"tupe": "relative", "tupe_max_distance": 8},
       r"'tupe_max_distance' must be larger than tupe_num_buckets / 4 \(8\)"),
      ({"tupe": "absolute", "position_embedding_type": "sinusoidal"},
       r"'position_embedding_type' must be \"learned\" \(the default\) with "
       r"tupe"),
      ({"tupe": "absolute", "hierarchical_position_alpha": 0.4},
       r"'hierarchical_position_alpha' must be null with tupe")):
    with pytest.raises(ValueError, match=message):
      _config(**change)
