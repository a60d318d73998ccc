"""convert_checkpoint.py and bert_tf.interop on the original TF1 format."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import interop
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertModel
import script_runner


# The fixtures' TF1 checkpoints (directory, prefix), for every format's tests.
FIXTURE_CHECKPOINTS = [
    ("original_bert_small", "bert_model.ckpt"),
    ("original_albert_small", "model.ckpt-best"),
    ("keras_bert_tiny", "bert_model.ckpt"),
]


def checkpoint_tensors(prefix):
  """Every tensor of a TF1 checkpoint, by name."""
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


@pytest.mark.parametrize("model_dir,prefix", FIXTURE_CHECKPOINTS)
def test_tf1_to_tf1_keeps_every_weight_bitwise(fixtures_dir, tmp_path,
                                               model_dir, prefix):
  source = str(fixtures_dir / model_dir / prefix)
  out = tmp_path / "out"
  report = script_runner.run_main("convert_checkpoint", "--input=" + source,
                                  "--output=%s" % out, "--to=tf1")
  original = {n: v for n, v in checkpoint_tensors(source).items()
              if not checkpoints.is_training_state(n)}
  written = checkpoint_tensors(str(out / "bert_model.ckpt"))
  assert sorted(written) == sorted(original) == report.written
  for name, value in original.items():
    np.testing.assert_array_equal(written[name], value, err_msg=name)
  assert sorted(os.listdir(out)) == [
      "bert_config.json", "bert_model.ckpt.data-00000-of-00001",
      "bert_model.ckpt.index", "checkpoint", "vocab.txt"]
  config = BertConfig.from_json_file(str(out / "bert_config.json"))
  assert config.to_dict() == interop.read(source).config.to_dict()
  # The directory itself is an --init_checkpoint.
  model = BertModel(config)
  loaded = checkpoints.load_checkpoint(model, str(out), allow_missing=False)
  assert loaded.checkpoint == str(out / "bert_model.ckpt")


def test_released_directory_without_state_file_loads(fixtures_dir, tmp_path):
  # A released zip: bert_config.json, vocab.txt and one bert_model.ckpt.*,
  # no 'checkpoint' state file.
  release = tmp_path / "uncased_L-3_H-48_A-4"
  shutil.copytree(fixtures_dir / "original_bert_small", release,
                  ignore=shutil.ignore_patterns("trained", "pretrained", "*.npz",
                                                "*.tfrecord", "*.json.*"))
  config = BertConfig.from_json_file(str(release / "bert_config.json"))
  model = BertModel(config)
  report = checkpoints.load_checkpoint(model, str(release), allow_missing=False)
  assert "cls/predictions/output_bias" in report.unexpected
  weights = interop.read(str(release))
  assert weights.vocab_file == str(release / "vocab.txt")
  assert weights.has_pretraining_heads and weights.has_next_sentence_head


def test_bad_inputs_are_named(fixtures_dir, tmp_path):
  source = str(fixtures_dir / "original_bert_small" / "bert_model.ckpt")
  bare = tmp_path / "bare"
  bare.mkdir()
  for suffix in (".index", ".data-00000-of-00001"):
    shutil.copy(source + suffix, str(bare / "bert_model.ckpt") + suffix)
  with pytest.raises(ValueError, match=r"carries no config.*--bert_config_file"):
    interop.read(str(bare / "bert_model.ckpt"))
  weights = interop.read(
      str(bare / "bert_model.ckpt"),
      bert_config_file=str(fixtures_dir / "original_bert_small" /
                           "bert_config.json"))
  assert weights.vocab_file is None
  # A config that does not fit: every mismatch named with both shapes.
  wrong = BertConfig.from_json_file(
      str(fixtures_dir / "original_bert_small" / "bert_config.json"))
  wrong.num_hidden_layers = 4
  wrong.intermediate_size = 64
  with pytest.raises(ValueError, match=r"missing tensors: bert/encoder/layer_3"
                     r".*bert/encoder/layer_0/intermediate/dense/bias: "
                     r"expected \[64\], found \[96\]"):
    interop.read(str(bare / "bert_model.ckpt"), config=wrong)
  other = tmp_path / "other"
  other.mkdir()
  (other / "notes.txt").write_text("x")
  with pytest.raises(ValueError, match=r"No checkpoint found in directory .*"
                     r"other: it holds notes.txt\. Expected a TF1"):
    interop.read(str(other))
  # A non-empty output needs --overwrite, and a failed write leaves it as is.
  with pytest.raises(FileExistsError, match="--overwrite"):
    interop.convert(source, str(other), "tf1")
  assert os.listdir(other) == ["notes.txt"]
  interop.convert(source, str(other), "tf1", overwrite=True)
  assert "notes.txt" not in os.listdir(other)
  assert sorted(os.listdir(tmp_path)) == ["bare", "other"]


def test_model_saves_to_tf1_and_loads_back(fixtures_dir, tmp_path):
  config = BertConfig.from_json_file(
      str(fixtures_dir / "original_bert_small" / "bert_config.json"))
  model = BertModel(config)
  checkpoints.load_checkpoint(
      model, str(fixtures_dir / "original_bert_small" / "bert_model.ckpt"))
  report = interop.save(model, str(tmp_path / "m"), "tf1",
                        vocab_file=str(fixtures_dir / "original_bert_small" /
                                       "vocab.txt"))
  assert report.dropped == []
  other = BertModel(config)
  checkpoints.load_checkpoint(other, str(tmp_path / "m"), allow_missing=False)
  for a, b in zip(model.weights, other.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
