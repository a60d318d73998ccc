"""Tests of the Transformer-XL model against the original TF code's outputs."""

import json

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import transformer_xl as txl
from bert_tf.tasks import transformer_xl_lm
from bert_tf.training import trainer as trainer_lib

FIXTURE = "original_transformer_xl_small"


@pytest.fixture(scope="module")
def original(fixtures_dir):
  """(model with the original checkpoint loaded, io.npz arrays, ckpt prefix)."""
  directory = fixtures_dir / FIXTURE
  config = txl.TransformerXLConfig.from_json_file(
      str(directory / "config.json"))
  model = txl.TransformerXL(config)
  prefix = str(directory / "model.ckpt")
  checkpoints.load_checkpoint(model, prefix, allow_missing=False)
  return model, dict(np.load(directory / "io.npz")), prefix


def _nll(model, inputs, targets, mems):
  """The task's per-token nll [len, batch] of one segment, and its new mems."""
  outputs = model(inputs, mems=mems, targets=targets)
  return transformer_xl_lm.token_nll(outputs).numpy(), outputs["new_mems"]


def _run_segments(model, io, batch_size=3):
  """Runs the 4 fixture segments in order; returns (losses, final mems)."""
  mems = model.init_mems(batch_size)
  losses = []
  for inputs, targets in zip(io["inputs"], io["targets"]):
    nll, mems = _nll(model, inputs, targets, mems)
    losses.append(nll.mean())
  return np.array(losses), np.stack([m.numpy() for m in mems])


def test_variable_paths_are_the_original_names(original):
  model, _, prefix = original
  names = {n for n, _ in tf.train.list_variables(prefix)}
  assert {checkpoints.checkpoint_name(v) for v in model.weights} == names
  assert "transformer/layer_1/rel_attn/qkv/kernel" in names


def test_segments_with_memory_match_the_original(original):
  model, io, _ = original
  losses, final_mems = _run_segments(model, io)
  np.testing.assert_allclose(losses, io["nll"], rtol=0, atol=1e-5)
  assert final_mems.shape == (2, 16, 3, 32)
  np.testing.assert_allclose(final_mems, io["final_mems"], rtol=0, atol=1e-5)


def test_memory_changes_the_loss(original):
  # Segment 2 without the memory of segment 1 is predicted differently.
  model, io, _ = original
  alone, _ = _nll(model, io["inputs"][1], io["targets"][1],
                  model.init_mems(3))
  assert abs(alone.mean() - io["nll"][1]) > 1e-3


def test_future_tokens_do_not_change_earlier_predictions(original):
  model, io, _ = original
  inputs = io["inputs"][0].copy()
  before, _ = _nll(model, inputs, io["targets"][0], model.init_mems(3))
  inputs[7:] = (inputs[7:] + 1) % model.config.n_token
  after, _ = _nll(model, inputs, io["targets"][0], model.init_mems(3))
  np.testing.assert_array_equal(before[:7], after[:7])
  assert np.abs(before[7:] - after[7:]).max() > 0


def test_log_probs_of_every_token_hold_the_targets(original):
  # Without targets the model returns the log-probabilities of all tokens;
  # the targets' are the same numbers.
  model, io, _ = original
  mems = model.init_mems(3)
  every = model(io["inputs"][0], mems=mems)["log_probs"].numpy()
  assert every.shape == (12, 3, 17) and every.dtype == np.float32
  np.testing.assert_allclose(np.exp(every).sum(-1), 1, atol=1e-5)
  targets = model(io["inputs"][0], mems=mems,
                  targets=io["targets"][0])["target_log_probs"].numpy()
  np.testing.assert_allclose(
      np.take_along_axis(every, io["targets"][0][..., None], -1)[..., 0],
      targets, atol=1e-6, rtol=0)


# Measured: the 4 segment losses within 2.6e-3 (bfloat16) and 8.8e-4
# (float16) of the original's, relative; final memories within 0.068 and
# 0.021 (LayerNorm outputs, |x| up to 4). The bounds are about 4x those.
MIXED_PRECISION_BOUNDS = {"bfloat16": (1e-2, 0.25), "float16": (3e-3, 0.08)}


@pytest.mark.parametrize("dtype", sorted(MIXED_PRECISION_BOUNDS))
def test_mixed_precision_follows_the_original(fixtures_dir, dtype):
  directory = fixtures_dir / FIXTURE
  trainer_lib.set_dtype_policy(dtype)
  try:
    model = txl.TransformerXL(txl.TransformerXLConfig.from_json_file(
        str(directory / "config.json")))
  finally:
    trainer_lib.set_dtype_policy("float32")
  checkpoints.load_checkpoint(model, str(directory / "model.ckpt"))
  assert {v.dtype for v in model.weights} == {"float32"}
  io = dict(np.load(directory / "io.npz"))
  outputs = model(io["inputs"][0], mems=model.init_mems(3),
                  targets=io["targets"][0])
  assert outputs["output"].dtype == dtype
  assert outputs["target_log_probs"].dtype == tf.float32
  assert {m.dtype for m in outputs["new_mems"]} == {tf.float32}
  losses, final_mems = _run_segments(model, io)
  loss_rtol, mems_atol = MIXED_PRECISION_BOUNDS[dtype]
  np.testing.assert_allclose(losses, io["nll"], rtol=loss_rtol, atol=0)
  np.testing.assert_allclose(final_mems, io["final_mems"], rtol=0,
                             atol=mems_atol)


def test_rel_shift_by_hand():
  # qlen 3, klen 5 (mlen 2): x[i, j] = 10 i + j. Row i moves left by
  # qlen - 1 - i, so that [i, j] is the score of distance (2 + i) - j.
  x = tf.constant([[10 * i + j for j in range(5)] for i in range(3)])
  expected = [[2, 3, 4, 0, 10],
              [11, 12, 13, 14, 0],
              [20, 21, 22, 23, 24]]
  np.testing.assert_array_equal(txl.rel_shift(x).numpy(), expected)
  # Trailing [batch, heads] axes ride along.
  shifted = txl.rel_shift(tf.reshape(x, [3, 5, 1, 1]))
  np.testing.assert_array_equal(shifted.numpy()[:, :, 0, 0], expected)


def test_causal_mask_by_hand():
  np.testing.assert_array_equal(
      txl.create_mask(3, 2).numpy(),
      [[0, 0, 0, 1, 1],
       [0, 0, 0, 0, 1],
       [0, 0, 0, 0, 0]])


def test_same_length_mask_by_hand():
  mask = txl.create_mask(3, 2, same_length=True).numpy()
  np.testing.assert_array_equal(mask, [[0, 0, 0, 1, 1],
                                       [1, 0, 0, 0, 1],
                                       [1, 1, 0, 0, 0]])
  # Every query sees mlen + 1 keys.
  np.testing.assert_array_equal((1 - mask).sum(1), [3, 3, 3])


def test_relative_encodings_descend_and_clamp():
  enc = txl.relative_positional_encodings(4, 6).numpy()[:, 0, :]
  inv_freq = 1 / 10000 ** (np.arange(0, 6, 2) / 6)
  pos = np.array([3.0, 2.0, 1.0, 0.0])
  np.testing.assert_allclose(
      enc, np.concatenate([np.sin(np.outer(pos, inv_freq)),
                           np.cos(np.outer(pos, inv_freq))], 1), atol=1e-6)
  clamped = txl.relative_positional_encodings(4, 6, clamp_len=2).numpy()
  np.testing.assert_array_equal(clamped[0], clamped[1])  # 3 -> 2
  np.testing.assert_array_equal(clamped[1:], enc[1:, None, :])


def test_cache_memory_keeps_the_last_positions_without_gradient():
  prev = tf.reshape(tf.range(4, dtype=tf.float32), [4, 1, 1])
  curr = tf.Variable(tf.reshape(tf.range(10, 13, dtype=tf.float32),
                                [3, 1, 1]))
  with tf.GradientTape() as tape:
    new = txl.cache_memory(curr * 1.0, prev, mem_len=5)
    total = tf.reduce_sum(new)
  np.testing.assert_array_equal(new.numpy().ravel(), [2, 3, 10, 11, 12])
  assert tape.gradient(total, curr) is None
  assert txl.cache_memory(curr, prev, mem_len=0) is prev


def _small_config(**overrides):
  values = dict(n_token=20, n_layer=2, d_model=16, d_embed=16, n_head=2,
                d_head=8, d_inner=32, dropout=0.0, dropatt=0.0, mem_len=4)
  values.update(overrides)
  return txl.TransformerXLConfig.from_dict(values)


def test_adaptive_softmax_names_and_normalization():
  tf.random.set_seed(1)
  config = _small_config(cutoffs=[6, 12], div_val=2,
                         proj_share_all_but_first=True)
  model = txl.TransformerXL(config)
  names = {checkpoints.checkpoint_name(v): tuple(v.shape)
           for v in model.weights}
  assert names["transformer/adaptive_embed/cutoff_0/lookup_table"] == (6, 16)
  assert names["transformer/adaptive_embed/cutoff_2/lookup_table"] == (8, 4)
  assert names["transformer/adaptive_embed/cutoff_2/proj_W"] == (4, 16)
  assert names["transformer/adaptive_softmax/cutoff_0/cluster_W"] == (2, 16)
  assert names["transformer/adaptive_softmax/cutoff_0/proj"] == (16, 16)
  assert names["transformer/adaptive_softmax/cutoff_1/b"] == (6,)
  # Bins 1 and 2 reuse the embedding projections.
  assert "transformer/adaptive_softmax/cutoff_1/proj" not in names
  assert "transformer/adaptive_softmax/bias" not in names
  # Give the zero-initialized cluster and bin parameters some values.
  for variable in model.weights:
    if "adaptive_softmax" in variable.path:
      variable.assign(tf.random.normal(variable.shape))
  # The same hidden state [3, d_model] at 20 positions, whose targets run
  # over the whole vocabulary: the probabilities sum to 1.
  hidden = tf.tile(tf.random.normal([1, 3, 16]), [20, 1, 1])
  targets = tf.tile(tf.range(20)[:, None], [1, 3])
  log_probs = model.adaptive_softmax(hidden, targets)
  probs = tf.exp(log_probs).numpy()  # [20, 3]
  np.testing.assert_allclose(probs.sum(0), [1, 1, 1], atol=1e-5)
  # Without targets: every token's log-probability, the same numbers.
  every = model.adaptive_softmax(hidden).numpy()  # [20, 3, 20]
  np.testing.assert_allclose(every[0].T, log_probs.numpy(), atol=1e-6)
  # The model runs end to end with the adaptive embedding and softmax.
  outputs = model(tf.constant([[1, 7, 15]] * 5), mems=model.init_mems(3),
                  targets=tf.constant([[7, 15, 1]] * 5))
  assert outputs["target_log_probs"].shape == (5, 3)
  assert set(outputs) == {"output", "new_mems", "target_log_probs"}


def test_adaptive_softmax_in_bfloat16_gives_float32_log_probs():
  trainer_lib.set_dtype_policy("bfloat16")
  try:
    model = txl.TransformerXL(_small_config(cutoffs=[6, 12], div_val=2,
                                            proj_share_all_but_first=True))
  finally:
    trainer_lib.set_dtype_policy("float32")
  inputs = tf.constant([[1, 7, 15]] * 5)
  every = model(inputs, mems=model.init_mems(3))["log_probs"]
  assert every.dtype == tf.float32 and every.shape == (5, 3, 20)
  np.testing.assert_allclose(tf.exp(every).numpy().sum(-1), 1, atol=1e-5)
  targets = model(inputs, mems=model.init_mems(3),
                  targets=tf.constant([[7, 15, 1]] * 5))["target_log_probs"]
  assert targets.dtype == tf.float32
  np.testing.assert_allclose(targets.numpy(),
                             every.numpy()[:, [0, 1, 2], [7, 15, 1]],
                             atol=1e-6)


def test_untie_r_gives_per_layer_biases():
  model = txl.TransformerXL(_small_config(untie_r=True))
  assert tuple(model.r_w_bias.shape) == (2, 2, 8)
  assert tuple(model.r_r_bias.shape) == (2, 2, 8)
  outputs = model(tf.zeros([5, 2], tf.int32), mems=model.init_mems(2),
                  targets=tf.ones([5, 2], tf.int32))
  assert [tuple(m.shape) for m in outputs["new_mems"]] == [(4, 2, 16)] * 2


def test_config_errors_name_the_field(fixtures_dir):
  with pytest.raises(ValueError, match="unknown Transformer-XL config key"
                     r"\(s\) d_modle"):
    txl.TransformerXLConfig.from_dict({"n_token": 5, "d_modle": 8})
  with pytest.raises(ValueError, match="'cutoffs' must be ascending"):
    txl.TransformerXLConfig.from_dict({"n_token": 5, "cutoffs": [3, 2]})
  with pytest.raises(ValueError, match="missing required field 'n_token'"):
    txl.TransformerXLConfig.from_dict({"n_layer": 2})
  config = json.loads(
      (fixtures_dir / FIXTURE / "config.json").read_text())
  assert txl.TransformerXLConfig.from_dict(config).mem_len == 16


def test_from_bert_config_maps_the_relative_xl_keys():
  bert = {"vocab_size": 30, "hidden_size": 32, "num_hidden_layers": 3,
          "num_attention_heads": 4, "intermediate_size": 64,
          "hidden_act": "relu", "hidden_dropout_prob": 0.1,
          "attention_probs_dropout_prob": 0.0, "initializer_range": 0.05,
          "attention_type": "relative_xl", "mem_len": 8, "clamp_len": 100,
          "same_length": True, "untie_r": True}
  config = txl.TransformerXLConfig.from_bert_config(bert)
  assert (config.n_token, config.n_layer, config.d_model, config.d_embed,
          config.n_head, config.d_head, config.d_inner) == (30, 3, 32, 32, 4,
                                                            8, 64)
  assert (config.dropout, config.dropatt, config.init_std) == (0.1, 0.0, 0.05)
  assert (config.mem_len, config.clamp_len, config.same_length,
          config.untie_r) == (8, 100, True, True)
  with pytest.raises(ValueError, match="'hidden_act' must be 'relu'"):
    txl.TransformerXLConfig.from_bert_config(dict(bert, hidden_act="gelu"))
  with pytest.raises(ValueError, match="'attention_type' must be "
                     "'relative_xl'"):
    txl.TransformerXLConfig.from_bert_config(dict(bert,
                                                  attention_type="absolute"))
