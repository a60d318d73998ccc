"""Position options: hierarchical decomposition past n, sinusoidal, and limits."""

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertModel
from bert_tf.modeling import embeddings

# A 3-row table and alpha 0.4: u = (p - 0.4 p[0]) / 0.6 gives
# u[0] = [1, 2], u[1] = [13/3, 7], u[2] = [-7/3, 16/3].
SMALL_TABLE = np.array([[1.0, 2.0], [3.0, 5.0], [-1.0, 4.0]], np.float32)
# Position k = 3 i + j is 0.4 u[i] + 0.6 u[j], worked out by hand.
SMALL_EXPECTED = np.array([
    [1.0, 2.0], [3.0, 5.0], [-1.0, 4.0],  # k < 3: the table itself
    [7 / 3, 4.0],  # k = 3: (1, 0)
    [13 / 3, 7.0],  # k = 4: (1, 1) = u[1]
    [1 / 3, 6.0],  # k = 5: (1, 2)
    [-1 / 3, 10 / 3],  # k = 6: (2, 0)
    [5 / 3, 19 / 3],  # k = 7: (2, 1)
    [-7 / 3, 16 / 3],  # k = 8: (2, 2) = u[2]
])


def _small_config(fixtures_dir, **extra):
  path = fixtures_dir / "original_bert_small" / "bert_config.json"
  base = BertConfig.from_json_file(str(path)).to_dict()
  return BertConfig.from_dict(dict(base, **extra))


def _checkpoint(fixtures_dir):
  return str(fixtures_dir / "original_bert_small" / "bert_model.ckpt")


def _layer_norm(x, gamma, beta):
  mean = x.mean(-1, keepdims=True)
  variance = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + 1e-12) * gamma + beta


def test_formula_on_a_hand_computed_table():
  table = embeddings.hierarchical_position_table(
      tf.constant(SMALL_TABLE), 9, 0.4).numpy()
  np.testing.assert_array_equal(table[:3], SMALL_TABLE)
  np.testing.assert_allclose(table, SMALL_EXPECTED, rtol=0, atol=2e-6)
  # Shorter sequences are prefixes; the length can be a Tensor.
  np.testing.assert_allclose(
      embeddings.hierarchical_position_table(
          tf.constant(SMALL_TABLE), tf.constant(5), 0.4), SMALL_EXPECTED[:5],
      rtol=0, atol=2e-6)


def test_gradients_reach_the_table():
  table = tf.Variable(SMALL_TABLE)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(embeddings.hierarchical_position_table(table, 9, 0.4))
  # Rows k < 3 copy p[k]: weight 1 on each row. Rows k >= 3 are
  # (i, j) = (1,0) (1,1) (1,2) (2,0) (2,1) (2,2): 0.4 u[i] + 0.6 u[j], so
  # dL/du = [0.6 * 2, 0.4 * 3 + 0.6 * 2, 0.4 * 3 + 0.6 * 2] = [1.2, 2.4, 2.4].
  # Through u = (p - 0.4 p[0]) / 0.6: dL/dp[m] += dL/du[m] / 0.6, and p[0]
  # also gets -0.4 / 0.6 * sum(dL/du) = -4.
  expected = np.array([1 + 1.2 / 0.6 - 0.4 / 0.6 * 6.0,
                       1 + 2.4 / 0.6, 1 + 2.4 / 0.6])  # [-1, 5, 5]
  np.testing.assert_allclose(tape.gradient(loss, table),
                             np.repeat(expected[:, None], 2, 1), atol=1e-5)


def test_checkpoint_extends_to_400_tokens_exactly_as_the_formula(fixtures_dir):
  config = _small_config(fixtures_dir, hierarchical_position_alpha=0.4)
  model = BertModel(config)
  report = checkpoints.load_checkpoint(model, _checkpoint(fixtures_dir))
  assert not report.missing and len(report.loaded) == 55
  reader = tf.train.load_checkpoint(_checkpoint(fixtures_dir))

  def tensor(name):
    return reader.get_tensor("bert/embeddings/" + name).astype(np.float64)

  p = tensor("position_embeddings")  # [40, 48], never trained past 40
  ids = np.random.RandomState(7).randint(0, config.vocab_size, [2, 400])
  types = np.zeros_like(ids)
  types[:, 200:] = 1
  output = model({"input_ids": ids.astype(np.int32),
                  "segment_ids": types.astype(np.int32)})
  # The formula in float64 numpy, independent of the model's code.
  u = (p - 0.4 * p[0]) / 0.6
  k = np.arange(400)
  positions = 0.4 * u[k // 40] + 0.6 * u[k % 40]
  positions[:40] = p
  summed = (tensor("word_embeddings")[ids] + tensor("token_type_embeddings")[
      types] + positions[None])
  expected = _layer_norm(summed, tensor("LayerNorm/gamma"),
                         tensor("LayerNorm/beta"))
  np.testing.assert_allclose(output["embedding_output"], expected, rtol=0,
                             atol=2e-5)
  assert output["sequence_output"].shape == (2, 400, 48)
  assert np.isfinite(output["sequence_output"]).all()


def test_below_n_the_model_is_the_original(fixtures_dir):
  io = np.load(fixtures_dir / "original_bert_small" / "io.npz")
  inputs = {k: io[k] for k in ("input_ids", "input_mask", "segment_ids")}
  outputs = []
  for extra in ({}, {"hierarchical_position_alpha": 0.4}):
    model = BertModel(_small_config(fixtures_dir, **extra))
    checkpoints.load_checkpoint(model, _checkpoint(fixtures_dir))
    outputs.append(model(inputs)["sequence_output"].numpy())
    table = model.embeddings.position_table(40).numpy()
    np.testing.assert_array_equal(table,
                                  model.embeddings.position_embeddings.numpy())
  np.testing.assert_array_equal(outputs[0], outputs[1])
  np.testing.assert_allclose(outputs[1], io["sequence_output"], atol=1e-5,
                             rtol=0)


def test_beyond_n_squared_is_a_clear_error(fixtures_dir):
  config = _small_config(fixtures_dir, hierarchical_position_alpha=0.4)
  assert config.max_seq_length_limit == 1600
  model = BertModel(config)
  assert model.embeddings.position_table(1600).shape == (1600, 48)
  message = (r"Sequence length 1601 is longer than 1600, the square of "
             r"max_position_embeddings \(40\) that hierarchical_position_alpha "
             r"reaches")
  with pytest.raises(ValueError, match=message):
    model(np.ones([1, 1601], np.int32))

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
  def encode(ids):
    return model(ids)["pooled_output"]

  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"longer than 1600, the square"):
    encode(np.ones([1, 1601], np.int32))


@pytest.mark.parametrize("extra, limit", [
    ({}, 40),
    ({"hierarchical_position_alpha": 0.4}, 1600),
    ({"tupe": "absolute"}, 40),
    ({"position_embedding_type": "sinusoidal"}, None),
])
def test_max_seq_length_limit(fixtures_dir, extra, limit):
  assert _small_config(fixtures_dir, **extra).max_seq_length_limit == limit


@pytest.mark.parametrize("change, message", [
    ({"hierarchical_position_alpha": 0.5},
     r"'hierarchical_position_alpha' must be null or a number in \(0, 1\) "
     r"other than 0.5 \(e.g. 0.4\), found 0.5"),
    ({"hierarchical_position_alpha": 1.0}, r"found 1.0"),
    ({"hierarchical_position_alpha": "0.4"}, r"found '0.4'"),
    ({"hierarchical_position_alpha": 0.4,
      "position_embedding_type": "sinusoidal"},
     r"'hierarchical_position_alpha' must be null when "
     r"position_embedding_type is 'sinusoidal'"),
    ({"attention_chunk_size": 0},
     r"'attention_chunk_size' must be null \(full attention\) or an int > 0"),
])
def test_position_config_errors_name_the_field(change, message):
  base = {"vocab_size": 10, "hidden_size": 48, "num_attention_heads": 4}
  with pytest.raises(ValueError, match=r"^my_config.json: field .*" + message):
    BertConfig.from_dict(dict(base, **change), source="my_config.json")


def test_sinusoidal_model_adds_the_fixed_table(fixtures_dir):
  config = _small_config(fixtures_dir, position_embedding_type="sinusoidal")
  model = BertModel(config)
  checkpoints.load_checkpoint(model, _checkpoint(fixtures_dir))
  assert "bert/embeddings/position_embeddings" not in [
      v.path for v in model.weights]
  ids = np.arange(60, dtype=np.int32)[None] % config.vocab_size
  output = model(ids)["embedding_output"].numpy()  # 60 > 40 positions: fine
  position = np.arange(60)[:, None]
  rates = 1.0 / 10000 ** (np.arange(0, 48, 2) / 48)
  table = np.zeros([60, 48])
  table[:, 0::2] = np.sin(position * rates)
  table[:, 1::2] = np.cos(position * rates)
  e = model.embeddings
  summed = (e.word_embeddings.numpy()[ids[0]] +
            e.token_type_embeddings.numpy()[0] + table)
  expected = _layer_norm(summed, e.layer_norm.gamma.numpy(),
                         e.layer_norm.beta.numpy())
  np.testing.assert_allclose(output[0], expected, rtol=0, atol=2e-5)
