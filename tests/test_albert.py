"""ALBERT as an option of BertModel: config, names, sharing, numbers.

Against the original google-research/albert code's outputs
(`original_albert_small`) and against an independent float64 numpy
implementation of ALBERT written from its formulas, for configs with several
groups and several inner blocks per group.
"""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertModel, BertPretrainer
from bert_tf.tasks import pretraining

INPUTS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
          "masked_lm_ids", "masked_lm_weights")

# The names of one ALBERT block, relative to group_<g>/inner_group_<i>, and
# their shapes in terms of H (hidden) and I (intermediate).
BLOCK_VARIABLES = {
    "attention_1/self/query/kernel": ("H", "H"),
    "attention_1/self/query/bias": ("H",),
    "attention_1/self/key/kernel": ("H", "H"),
    "attention_1/self/key/bias": ("H",),
    "attention_1/self/value/kernel": ("H", "H"),
    "attention_1/self/value/bias": ("H",),
    "attention_1/output/dense/kernel": ("H", "H"),
    "attention_1/output/dense/bias": ("H",),
    "LayerNorm/gamma": ("H",),
    "LayerNorm/beta": ("H",),
    "ffn_1/intermediate/dense/kernel": ("H", "I"),
    "ffn_1/intermediate/dense/bias": ("I",),
    "ffn_1/intermediate/output/dense/kernel": ("I", "H"),
    "ffn_1/intermediate/output/dense/bias": ("H",),
    "LayerNorm_1/gamma": ("H",),
    "LayerNorm_1/beta": ("H",),
}


@pytest.fixture(scope="module")
def original(fixtures_dir):
  """original_albert_small: config, pretrainer loaded from model.ckpt-best, io."""
  root = fixtures_dir / "original_albert_small"
  config = BertConfig.from_json_file(str(root / "albert_config.json"))
  model = BertPretrainer(config)
  report = checkpoints.load_checkpoint(model, str(root / "model.ckpt-best"))
  return config, model, np.load(root / "io.npz"), report, root


def _features(io):
  features = {k: io[k] for k in INPUTS}
  # ALBERT keeps the record name `next_sentence_labels` for the SOP labels.
  features["next_sentence_labels"] = io["sentence_order_labels"]
  return features


# --- config -----------------------------------------------------------------


def test_original_albert_config_loads_as_is_and_round_trips(original):
  config, _, _, _, root = original
  raw = json.loads((root / "albert_config.json").read_text())
  assert config.to_dict() == raw
  assert json.loads(config.to_json_string()) == raw
  assert config.uses_albert_encoder
  assert (config.embedding_width, config.num_hidden_groups,
          config.inner_group_num, config.num_encoder_outputs) == (16, 2, 1, 4)
  assert [config.albert_group_index(l) for l in range(4)] == [0, 0, 1, 1]


def test_plain_bert_config_keeps_the_bert_encoder(fixtures_dir):
  path = fixtures_dir / "original_bert_small" / "bert_config.json"
  config = BertConfig.from_json_file(str(path))
  assert not config.uses_albert_encoder
  assert config.num_encoder_outputs == config.num_hidden_layers
  names = [v.path for v in BertModel(config).weights]
  assert "bert/encoder/layer_2/output/LayerNorm/gamma" in names
  assert not any("transformer" in n or "mapping" in n for n in names)


@pytest.mark.parametrize("change, message", [
    ({"down_scale_factor": 2}, r"'down_scale_factor' must be 1 \(the original "
                               r"ALBERT modeling code does not use this key"),
    ({"net_structure_type": 1}, r"'net_structure_type' must be 0"),
    ({"gap_size": 3}, r"'gap_size' must be 0"),
    ({"num_memory_blocks": 2}, r"'num_memory_blocks' must be 0"),
    ({"layers_to_keep": [0, 1]}, r"'layers_to_keep' must be \[\] or null"),
    ({"gap_size": False}, r"'gap_size' must be 0 .*found False"),
    ({"num_hidden_groups": 0}, r"'num_hidden_groups' must be an int > 0"),
    ({"inner_group_num": "2"}, r"'inner_group_num' must be an int > 0, "
                               r"found '2'"),
    ({"embedding_size": 0}, r"'embedding_size' must be null or an int > 0"),
])
def test_albert_key_errors_name_the_field(original, change, message):
  raw = original[0].to_dict()
  with pytest.raises(ValueError, match=r"albert_config.json: field " + message):
    BertConfig.from_dict(dict(raw, **change), source="albert_config.json")


def test_no_op_keys_are_accepted_at_their_no_op_values(original):
  raw = dict(original[0].to_dict(), layers_to_keep=[], down_scale_factor=1.0)
  assert BertConfig.from_dict(raw).layers_to_keep == []


# --- the original's numbers -------------------------------------------------


def test_variable_names_and_shapes_are_the_original_checkpoint(original):
  _, model, _, report, root = original
  expected = dict(tf.train.list_variables(str(root / "model.ckpt-best")))
  assert {v.path: list(v.shape) for v in model.weights} == expected
  assert len(report.loaded) == len(expected) == 48
  assert report.missing == [] and report.unexpected == []


def test_every_output_matches_the_original(original):
  _, model, io, _, _ = original
  out = pretraining.run_with_losses(model, _features(io), training=False)
  for key, fixture_key in (("embedding_output", "embedding_output"),
                           ("sequence_output", "sequence_output"),
                           ("pooled_output", "pooled_output"),
                           ("mlm_log_probs", "mlm_log_probs"),
                           ("nsp_log_probs", "sop_log_probs"),
                           ("mlm_loss", "mlm_loss"),
                           ("nsp_loss", "sop_loss"),
                           ("total_loss", "total_loss")):
    np.testing.assert_allclose(out[key], io[fixture_key], atol=1e-5, rtol=0,
                               err_msg=key)
  assert out["embedding_output"].shape == (3, 32, 16)
  assert len(out["encoder_outputs"]) == 4
  for i, layer in enumerate(out["encoder_outputs"]):
    np.testing.assert_allclose(layer, io["layer_%d" % i], atol=1e-5, rtol=0,
                               err_msg="layer_%d" % i)


def test_checkpoint_round_trip_writes_each_shared_variable_once(original,
                                                                 tmp_path):
  config, model, io, _, root = original
  prefix = checkpoints.save_checkpoint(model, str(tmp_path / "model.ckpt-1"))
  written = dict(tf.train.list_variables(prefix))
  assert written == dict(tf.train.list_variables(
      str(root / "model.ckpt-best")))
  reader = tf.train.load_checkpoint(str(root / "model.ckpt-best"))
  ours = tf.train.load_checkpoint(prefix)
  for name in written:
    np.testing.assert_array_equal(ours.get_tensor(name),
                                  reader.get_tensor(name), err_msg=name)
  again = BertPretrainer(config)
  report = checkpoints.load_checkpoint(again, prefix)
  assert report.missing == [] and report.unexpected == []
  np.testing.assert_allclose(
      again(_features(io))["sequence_output"], io["sequence_output"],
      atol=1e-5, rtol=0)


# --- an independent float64 ALBERT ------------------------------------------


def _ln(x, gamma, beta):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def _gelu(x):
  return 0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) *
                                  (x + 0.044715 * x ** 3)))


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_albert(w, c, features):
  """ALBERT's forward pass in float64 from the formulas, weights by name.

  Args:
    w: dict of original checkpoint name -> numpy array.
    c: dict of config keys.
    features: dict of numpy inputs (ids, mask, segments, masked positions).

  Returns:
    dict with embedding_output, blocks (every inner block's output, in
    order), sequence_output, pooled_output, and with the `cls/*` weights
    mlm_log_probs and sop_log_probs.
  """
  ids, mask, types = (features[k] for k in ("input_ids", "input_mask",
                                            "segment_ids"))
  seq = ids.shape[1]
  table = w["bert/embeddings/position_embeddings"]
  alpha = c.get("hierarchical_position_alpha")
  n = table.shape[0]
  positions = []
  for k in range(seq):
    if k < n:
      positions.append(table[k])
    else:  # q[i*n+j] = a*u[i] + (1-a)*u[j], u = (p - a*p[0]) / (1-a)
      u = (table - alpha * table[0]) / (1 - alpha)
      positions.append(alpha * u[k // n] + (1 - alpha) * u[k % n])
  emb = (w["bert/embeddings/word_embeddings"][ids] +
         w["bert/embeddings/token_type_embeddings"][types] +
         np.stack(positions)[None])
  emb = _ln(emb, w["bert/embeddings/LayerNorm/gamma"],
            w["bert/embeddings/LayerNorm/beta"])
  h = emb
  if "bert/encoder/embedding_hidden_mapping_in/kernel" in w:
    h = (h @ w["bert/encoder/embedding_hidden_mapping_in/kernel"] +
         w["bert/encoder/embedding_hidden_mapping_in/bias"])
  heads = c["num_attention_heads"]
  d = c["hidden_size"] // heads
  adder = (1.0 - mask[:, None, None, :]) * -10000.0
  blocks = []
  for layer in range(c["num_hidden_layers"]):
    group = int(layer / c["num_hidden_layers"] * c["num_hidden_groups"])
    for inner in range(c["inner_group_num"]):
      p = "bert/encoder/transformer/group_%d/inner_group_%d/" % (group, inner)

      def dense(x, scope, p=p):
        return x @ w[p + scope + "/kernel"] + w[p + scope + "/bias"]

      def split(x):  # [B, S, H] -> [B, N, S, d]
        return x.reshape(x.shape[0], seq, heads, d).transpose(0, 2, 1, 3)

      q, k, v = (split(dense(h, "attention_1/self/" + s))
                 for s in ("query", "key", "value"))
      logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + adder
      probs = np.exp(logits - logits.max(-1, keepdims=True))
      probs /= probs.sum(-1, keepdims=True)
      context = (probs @ v).transpose(0, 2, 1, 3).reshape(h.shape)
      a = _ln(dense(context, "attention_1/output/dense") + h,
              w[p + "LayerNorm/gamma"], w[p + "LayerNorm/beta"])
      f = dense(_gelu(dense(a, "ffn_1/intermediate/dense")),
                "ffn_1/intermediate/output/dense")
      h = _ln(f + a, w[p + "LayerNorm_1/gamma"], w[p + "LayerNorm_1/beta"])
      blocks.append(h)
  pooled = np.tanh(h[:, 0] @ w["bert/pooler/dense/kernel"] +
                   w["bert/pooler/dense/bias"])
  out = {"embedding_output": emb, "blocks": blocks, "sequence_output": h,
         "pooled_output": pooled}
  if "cls/predictions/output_bias" not in w:
    return out
  positions = features["masked_lm_positions"]
  picked = np.stack([h[b, positions[b]] for b in range(h.shape[0])])
  picked = picked.reshape(-1, h.shape[-1])
  t = _gelu(picked @ w["cls/predictions/transform/dense/kernel"] +
            w["cls/predictions/transform/dense/bias"])
  t = _ln(t, w["cls/predictions/transform/LayerNorm/gamma"],
          w["cls/predictions/transform/LayerNorm/beta"])
  mlm = _log_softmax(t @ w["bert/embeddings/word_embeddings"].T +
                     w["cls/predictions/output_bias"])
  sop = _log_softmax(pooled @ w["cls/seq_relationship/output_weights"].T +
                     w["cls/seq_relationship/output_bias"])
  out.update(mlm_log_probs=mlm, sop_log_probs=sop)
  return out


def albert_config(**overrides):
  raw = {"vocab_size": 50, "embedding_size": 8, "hidden_size": 16,
         "num_hidden_layers": 6, "num_hidden_groups": 3, "inner_group_num": 2,
         "num_attention_heads": 4, "intermediate_size": 24,
         "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
         "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 20,
         "type_vocab_size": 2, "initializer_range": 0.02,
         "down_scale_factor": 1, "net_structure_type": 0, "gap_size": 0,
         "num_memory_blocks": 0}
  raw.update(overrides)
  return raw


def randomize_weights(model, seed=0):
  """Gives every variable random values large enough to show any mix-up."""
  rng = np.random.RandomState(seed)
  for variable in model.weights:
    shape = tuple(variable.shape)
    if variable.path.endswith("gamma"):
      value = 1.0 + 0.3 * rng.normal(size=shape)
    else:
      value = 0.4 * rng.normal(size=shape)
    variable.assign(value.astype(np.float32))
  return {v.path: v.numpy().astype(np.float64) for v in model.weights}


def _inputs(seq=7):
  rng = np.random.RandomState(5)
  ids = rng.randint(0, 50, size=[2, seq]).astype(np.int32)
  mask = np.ones([2, seq], np.int32)
  mask[1, seq - 2:] = 0
  types = np.zeros([2, seq], np.int32)
  types[:, seq // 2:] = 1
  return {"input_ids": ids, "input_mask": mask, "segment_ids": types,
          "masked_lm_positions": np.array([[1, 3], [0, seq - 3]], np.int32)}


def _expected_names(raw):
  """The variable names and shapes the naming rule gives for a config."""
  e, h, i = raw["embedding_size"], raw["hidden_size"], raw["intermediate_size"]
  names = {
      "bert/embeddings/word_embeddings": [raw["vocab_size"], e],
      "bert/embeddings/token_type_embeddings": [raw["type_vocab_size"], e],
      "bert/embeddings/position_embeddings":
          [raw["max_position_embeddings"], e],
      "bert/embeddings/LayerNorm/gamma": [e],
      "bert/embeddings/LayerNorm/beta": [e],
      "bert/pooler/dense/kernel": [h, h], "bert/pooler/dense/bias": [h],
  }
  if e != h:
    names["bert/encoder/embedding_hidden_mapping_in/kernel"] = [e, h]
    names["bert/encoder/embedding_hidden_mapping_in/bias"] = [h]
  layers = raw["num_hidden_layers"]
  groups = {int(l / layers * raw["num_hidden_groups"]) for l in range(layers)}
  sizes = {"H": h, "I": i}
  for g in groups:
    for inner in range(raw["inner_group_num"]):
      for name, shape in BLOCK_VARIABLES.items():
        names["bert/encoder/transformer/group_%d/inner_group_%d/%s" %
              (g, inner, name)] = [sizes[s] for s in shape]
  return names


@pytest.mark.parametrize("overrides, groups", [
    ({}, [0, 1, 2]),  # 6 layers in 3 groups of 2 inner blocks
    ({"num_hidden_layers": 5, "inner_group_num": 1, "embedding_size": 16},
     [0, 1, 2]),  # groups that do not divide the layers; no projection
    ({"num_hidden_layers": 2, "num_hidden_groups": 4, "inner_group_num": 3},
     [0, 2]),  # more groups than layers: only the groups used exist
])
def test_names_follow_the_rule_and_numbers_equal_numpy(overrides, groups):
  raw = albert_config(**overrides)
  model = BertPretrainer(BertConfig.from_dict(raw))
  shapes = {v.path: list(v.shape) for v in model.weights}
  assert shapes == dict(_expected_names(raw), **{
      "cls/predictions/transform/dense/kernel": [16, raw["embedding_size"]],
      "cls/predictions/transform/dense/bias": [raw["embedding_size"]],
      "cls/predictions/transform/LayerNorm/gamma": [raw["embedding_size"]],
      "cls/predictions/transform/LayerNorm/beta": [raw["embedding_size"]],
      "cls/predictions/output_bias": [50],
      "cls/seq_relationship/output_weights": [2, 16],
      "cls/seq_relationship/output_bias": [2]})
  assert sorted({int(n.split("group_")[1].split("/")[0]) for n in shapes
                 if "/group_" in n}) == groups
  weights = randomize_weights(model)
  features = _inputs()
  out = model(features, training=False)
  expected = numpy_albert(weights, raw, features)
  assert len(out["encoder_outputs"]) == len(expected["blocks"]) == (
      raw["num_hidden_layers"] * raw["inner_group_num"])
  for got, want in zip(out["encoder_outputs"], expected["blocks"]):
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  for key, want_key in (("embedding_output", "embedding_output"),
                        ("sequence_output", "sequence_output"),
                        ("pooled_output", "pooled_output"),
                        ("mlm_log_probs", "mlm_log_probs"),
                        ("nsp_log_probs", "sop_log_probs")):
    np.testing.assert_allclose(out[key], expected[want_key], atol=1e-5,
                               rtol=0, err_msg=key)


def test_layers_of_a_group_share_its_variables():
  raw = albert_config()  # layers 0,1 -> group 0; 2,3 -> 1; 4,5 -> 2
  model = BertModel(BertConfig.from_dict(raw))
  randomize_weights(model)
  names = [v.path for v in model.weights]
  assert len(names) == len(set(names)) == len(_expected_names(raw))
  features = _inputs()
  before = [o.numpy() for o in model(features)["encoder_outputs"]]
  kernel = next(v for v in model.weights if v.path ==
                "bert/encoder/transformer/group_1/inner_group_1/"
                "ffn_1/intermediate/dense/kernel")
  kernel.assign(kernel.numpy() * 1.5)
  after = [o.numpy() for o in model(features)["encoder_outputs"]]
  # Outputs are per (layer, inner block) in order: group 1's inner block 1
  # first runs at entry 2 * 2 + 1 = 5 (layer 2), and again at 7 (layer 3).
  changed = [not np.allclose(b, a, atol=1e-6) for b, a in zip(before, after)]
  assert changed == [False] * 5 + [True] * 7
  blocks = model.encoder.blocks
  layer_blocks = [[blocks[i] for i in indexes]
                  for indexes in model.encoder.layer_blocks]
  assert layer_blocks[2][1] is layer_blocks[3][1]
  assert layer_blocks[1][1] is not layer_blocks[2][1]
  # Layers 2 and 3 both use the changed kernel: the numpy model, which reads
  # group_1 for both, agrees after the change.
  weights = {v.path: v.numpy().astype(np.float64) for v in model.weights}
  expected = numpy_albert(weights, raw, features)
  for got, want in zip(after, expected["blocks"]):
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_hierarchical_positions_decompose_the_embedding_size_table():
  raw = albert_config(max_position_embeddings=4,
                       hierarchical_position_alpha=0.4)
  model = BertPretrainer(BertConfig.from_dict(raw))
  assert model.config.max_seq_length_limit == 16
  weights = randomize_weights(model, seed=2)
  features = _inputs(seq=11)  # positions 4..10 come from the decomposition
  out = model(features)
  expected = numpy_albert(weights, raw, features)
  np.testing.assert_allclose(out["embedding_output"],
                             expected["embedding_output"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(out["sequence_output"],
                             expected["sequence_output"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("tupe", [None, "absolute"])
def test_unshared_albert_without_projection_equals_bert(tupe):
  """ALBERT with a group per layer, one block and E = H is BERT renamed."""
  common = dict(vocab_size=50, hidden_size=16, num_hidden_layers=3,
                num_attention_heads=4, intermediate_size=24,
                max_position_embeddings=20, type_vocab_size=2, tupe=tupe)
  bert = BertModel(BertConfig.from_dict(common))
  albert = BertModel(BertConfig.from_dict(dict(
      common, embedding_size=16, num_hidden_groups=3, inner_group_num=1)))
  weights = randomize_weights(bert, seed=4)
  renames = {"attention/output/LayerNorm": "LayerNorm",
             "attention/output/dense": "attention_1/output/dense",
             "attention/self": "attention_1/self",
             "intermediate/dense": "ffn_1/intermediate/dense",
             "output/dense": "ffn_1/intermediate/output/dense",
             "output/LayerNorm": "LayerNorm_1"}
  targets = checkpoints.variables_by_name(albert)
  assert len(targets) == len(weights)
  for name, value in weights.items():
    if name.startswith("bert/encoder/layer_"):
      layer, rest = name[len("bert/encoder/layer_"):].split("/", 1)
      for old, new in renames.items():
        if rest.startswith(old + "/"):
          rest = new + rest[len(old):]
          break
      name = ("bert/encoder/transformer/group_%s/inner_group_0/%s" %
              (layer, rest))
    targets.pop(name).assign(value.astype(np.float32))
  assert not targets
  features = _inputs()
  want, got = bert(features), albert(features)
  for key in ("sequence_output", "pooled_output"):
    np.testing.assert_allclose(got[key], want[key], atol=1e-5, rtol=0)
