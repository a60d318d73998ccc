"""BertModel and the pretraining heads against the original code's outputs."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertModel, BertPretrainer, gelu
from bert_tf.modeling import embeddings
from bert_tf.modeling import layers

FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
            "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


def _pretrained_prefix(small):
  return small[3]


@pytest.fixture(scope="module")
def small(fixtures_dir):
  """The original_bert_small fixture: config, loaded pretrainer, io.npz."""
  root = fixtures_dir / "original_bert_small"
  config = BertConfig.from_json_file(str(root / "bert_config.json"))
  model = BertPretrainer(config)
  checkpoints.load_checkpoint(model, str(root / "bert_model.ckpt"))
  io = np.load(root / "io.npz")
  return config, model, io, str(root / "bert_model.ckpt")


def test_every_output_matches_the_original(small):
  _, model, io, _ = small
  out = model({k: io[k] for k in FEATURES}, training=True)
  for key in ("embedding_output", "sequence_output", "pooled_output",
              "mlm_log_probs", "nsp_log_probs", "mlm_loss", "nsp_loss",
              "total_loss"):
    np.testing.assert_allclose(out[key], io[key], atol=1e-5, rtol=0, err_msg=key)
  assert len(out["encoder_outputs"]) == 3
  for i, layer in enumerate(out["encoder_outputs"]):
    np.testing.assert_allclose(layer, io["layer_%d" % i], atol=1e-5, rtol=0)


def test_outputs_match_inside_tf_function_with_dynamic_shapes(small):
  _, model, io, _ = small
  spec = tf.TensorSpec([None, None], tf.int32)

  @tf.function(input_signature=[spec, spec, spec])
  def encode(ids, mask, types):
    out = model.bert({"input_ids": ids, "input_mask": mask,
                      "segment_ids": types}, training=False)
    return out["sequence_output"], out["pooled_output"]

  seq, pooled = encode(io["input_ids"], io["input_mask"], io["segment_ids"])
  np.testing.assert_allclose(seq, io["sequence_output"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(pooled, io["pooled_output"], atol=1e-5, rtol=0)


def test_variable_paths_are_the_original_checkpoint_names(small, fixtures_dir):
  _, model, _, _ = small
  ckpt = str(fixtures_dir / "original_bert_small" / "bert_model.ckpt")
  original = {name: shape for name, shape in tf.train.list_variables(ckpt)}
  ours = {v.path: list(v.shape) for v in model.weights}
  assert ours == original
  assert "bert/encoder/layer_2/attention/self/query/kernel" in ours


def test_default_mask_and_segments_are_ones_and_zeros(small):
  _, model, io, _ = small
  ids = io["input_ids"][:1]
  explicit = model.bert({"input_ids": ids, "input_mask": np.ones_like(ids),
                         "segment_ids": np.zeros_like(ids)})
  implicit = model.bert(ids)
  np.testing.assert_array_equal(implicit["sequence_output"],
                                explicit["sequence_output"])


def test_one_hot_embeddings_give_the_same_numbers(small):
  config, model, io, _ = small
  one_hot = BertModel(config, use_one_hot_embeddings=True)
  for target, source in zip(one_hot.weights, model.bert.weights):
    target.assign(source)
  inputs = {k: io[k] for k in ("input_ids", "input_mask", "segment_ids")}
  np.testing.assert_allclose(one_hot(inputs)["sequence_output"],
                             io["sequence_output"], atol=1e-5, rtol=0)


def test_sequence_longer_than_positions_is_a_clear_error(small):
  config, model, _, _ = small
  too_long = np.ones([1, config.max_position_embeddings + 1], np.int32)
  with pytest.raises(ValueError, match=r"Sequence length 41 is longer than "
                     r"max_position_embeddings \(40\)"):
    model.bert(too_long)

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
  def encode(ids):
    return model.bert(ids)["pooled_output"]

  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"longer than max_position_embeddings \(40\)"):
    encode(too_long)


def test_dropout_only_while_training(small):
  config, _, io, _ = small
  with_dropout = BertConfig.from_dict(
      dict(config.to_dict(), hidden_dropout_prob=0.1,
           attention_probs_dropout_prob=0.1))
  model = BertModel(with_dropout)
  ids = io["input_ids"]
  a = model(ids, training=False)["sequence_output"]
  b = model(ids, training=False)["sequence_output"]
  c = model(ids, training=True)["sequence_output"]
  np.testing.assert_array_equal(a, b)
  assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3


def test_gelu_is_the_tanh_approximation():
  x = tf.constant([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0])
  expected = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) *
                                       (v + 0.044715 * v ** 3)))
              for v in x.numpy()]
  np.testing.assert_allclose(gelu(x), expected, atol=1e-7)
  np.testing.assert_allclose(gelu(tf.constant(1.0)), 0.8411920, atol=1e-6)


def test_gelu_erf_is_the_exact_form():
  # hidden_act "gelu_erf": x * Phi(x), Hugging Face's and PyTorch's "gelu".
  gelu_erf = layers.get_activation("gelu_erf")
  x = tf.constant([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0])
  expected = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.numpy()]
  np.testing.assert_allclose(gelu_erf(x), expected, atol=1e-7)
  np.testing.assert_allclose(gelu_erf(tf.constant(1.0)), 0.8413447, atol=1e-6)
  assert gelu_erf(tf.constant([1.0], tf.bfloat16)).dtype == tf.bfloat16


def test_sinusoidal_table_values():
  table = embeddings.sinusoidal_position_table(4, 6).numpy()
  assert table.shape == (4, 6)
  np.testing.assert_allclose(table[0], [0, 1, 0, 1, 0, 1], atol=1e-7)
  np.testing.assert_allclose(table[3, 0], math.sin(3.0), atol=1e-6)
  np.testing.assert_allclose(table[3, 3], math.cos(3.0 / 10000 ** (2 / 6)),
                             atol=1e-6)
  np.testing.assert_allclose(table[2, 4], math.sin(2.0 / 10000 ** (4 / 6)),
                             atol=1e-6)


def test_position_types_change_the_variables_and_the_numbers(small):
  config, model, io, _ = small
  for kind, has_table in (("sinusoidal", False), ("none", False),
                          ("learned", True)):
    other = BertModel(BertConfig.from_dict(
        dict(config.to_dict(), position_embedding_type=kind)))
    names = [v.path for v in other.weights]
    assert ("bert/embeddings/position_embeddings" in names) == has_table


# --- BertConfig -------------------------------------------------------------


def test_config_round_trip_keeps_unknown_keys(fixtures_dir):
  path = fixtures_dir / "keras_bert_tiny" / "bert_config.json"
  config = BertConfig.from_json_file(str(path))
  assert config.pooler_type == "first_token_transform"
  assert config.directionality == "bidi"
  assert config.to_dict() == json.loads(path.read_text())
  again = BertConfig.from_dict(json.loads(config.to_json_string()))
  assert again.to_dict() == config.to_dict()


def test_original_config_gains_no_keys_and_defaults_as_original():
  config = BertConfig.from_dict({"vocab_size": 10, "hidden_size": 8,
                                 "num_attention_heads": 2})
  assert sorted(config.to_dict()) == sorted([
      "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
      "intermediate_size", "hidden_act", "hidden_dropout_prob",
      "attention_probs_dropout_prob", "max_position_embeddings",
      "type_vocab_size", "initializer_range"])
  assert config.num_hidden_layers == 12 and config.type_vocab_size == 16
  assert config.position_embedding_type == "learned"
  assert config.tupe is None and config.hierarchical_position_alpha is None


@pytest.mark.parametrize("change, message", [
    ({"vocab_size": None}, r"field 'vocab_size' must be an int > 0, found None"),
    ({"hidden_size": "48"}, r"field 'hidden_size' must be an int > 0, found '48'"),
    ({"num_hidden_layers": 2.0}, r"'num_hidden_layers' must be an int > 0"),
    ({"hidden_size": 50}, r"hidden_size \(50\) is not a multiple of "
                          r"num_attention_heads \(4\)"),
    ({"hidden_act": "swish"}, r"field 'hidden_act' must be one of gelu, "
                              r"gelu_erf, relu, tanh, linear, found 'swish'"),
    ({"hidden_dropout_prob": 1.5}, r"'hidden_dropout_prob' must be a number "
                                   r"in \[0, 1\), found 1.5"),
    ({"position_embedding_type": "rotary"}, r"'position_embedding_type' must "
                                            r"be one of learned, sinusoidal"),
])
def test_config_errors_name_the_field(change, message):
  base = {"vocab_size": 10, "hidden_size": 48, "num_attention_heads": 4}
  with pytest.raises(ValueError, match=message):
    BertConfig.from_dict(dict(base, **change), source="my_config.json")


def test_config_error_messages_name_the_file(tmp_path, fixtures_dir):
  with pytest.raises(ValueError, match=r"not found: .*nope.json"):
    BertConfig.from_json_file(str(tmp_path / "nope.json"))
  bad = tmp_path / "bad.json"
  bad.write_text('{"vocab_size": 10,')
  with pytest.raises(ValueError, match=r"bad.json is not valid JSON"):
    BertConfig.from_json_file(str(bad))
  missing = tmp_path / "missing.json"
  missing.write_text('{"hidden_size": 8}')
  with pytest.raises(ValueError, match=r"missing.json: missing required field "
                     r"'vocab_size'"):
    BertConfig.from_json_file(str(missing))
  # A released config less one key: named, not silently defaulted.
  for key in ("num_attention_heads", "hidden_size", "hidden_act"):
    raw = json.loads((fixtures_dir / "original_bert_small" /
                      "bert_config.json").read_text())
    del raw[key]
    missing.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"missing.json: missing required "
                       r"field '%s'; .* this one lacks %s$" % (key, key)):
      BertConfig.from_json_file(str(missing))


# --- fine-tuning heads -------------------------------------------------------


def test_classifier_head_names_and_numbers(small):
  config, _, io, _ = small
  from bert_tf.modeling import BertClassifier
  model = BertClassifier(config, num_labels=3)
  names = sorted(v.path for v in model.weights if not v.path.startswith("bert/"))
  assert names == ["output_bias", "output_weights"]
  assert tuple(model.head.output_weights.shape) == (3, 48)
  checkpoints.load_checkpoint(model, _pretrained_prefix(small))
  weights = np.random.RandomState(0).normal(0, 0.02, (3, 48)).astype("f")
  model.head.output_weights.assign(weights)
  model.head.output_bias.assign([0.1, -0.2, 0.3])
  labels = np.array([2, 0, 1])
  out = model({"input_ids": io["input_ids"], "input_mask": io["input_mask"],
               "segment_ids": io["segment_ids"], "label_ids": labels})
  logits = io["pooled_output"] @ weights.T + [0.1, -0.2, 0.3]
  np.testing.assert_allclose(out["logits"], logits, atol=1e-5)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(out["loss"], -log_probs[[0, 1, 2], labels].mean(),
                             atol=1e-5)


def test_squad_head_names_and_numbers(small):
  config, _, io, _ = small
  from bert_tf.modeling import BertSquad
  model = BertSquad(config)
  names = sorted(v.path for v in model.weights if not v.path.startswith("bert/"))
  assert names == ["cls/squad/output_bias", "cls/squad/output_weights"]
  checkpoints.load_checkpoint(model, _pretrained_prefix(small))
  weights = np.random.RandomState(1).normal(0, 0.02, (2, 48)).astype("f")
  model.head.output_weights.assign(weights)
  starts, ends = np.array([3, 0, 5]), np.array([4, 0, 9])
  out = model({"input_ids": io["input_ids"], "input_mask": io["input_mask"],
               "segment_ids": io["segment_ids"], "start_positions": starts,
               "end_positions": ends})
  logits = io["sequence_output"] @ weights.T  # [B, S, 2]
  np.testing.assert_allclose(out["start_logits"], logits[..., 0], atol=1e-5)
  np.testing.assert_allclose(out["end_logits"], logits[..., 1], atol=1e-5)

  def nll(l, positions):
    log_probs = l - np.log(np.exp(l).sum(-1, keepdims=True))
    return -log_probs[np.arange(3), positions].mean()
  np.testing.assert_allclose(
      out["loss"], (nll(logits[..., 0], starts) + nll(logits[..., 1], ends)) / 2,
      atol=1e-5)
