"""Legacy TF1 checkpoints: loading, reporting, and writing them back."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertModel, BertPretrainer


def _small(fixtures_dir):
  root = fixtures_dir / "original_bert_small"
  return (BertConfig.from_json_file(str(root / "bert_config.json")),
          str(root / "bert_model.ckpt"))


def test_round_trip_writes_the_original_names_and_tensors(fixtures_dir,
                                                          tmp_path):
  config, ckpt = _small(fixtures_dir)
  model = BertPretrainer(config)
  report = checkpoints.load_checkpoint(model, ckpt)
  assert len(report.loaded) == 62 and not report.missing
  assert not report.unexpected and not report.skipped
  out = checkpoints.save_checkpoint(model, str(tmp_path / "model.ckpt"))
  assert sorted(os.listdir(tmp_path)) == [
      "model.ckpt.data-00000-of-00001", "model.ckpt.index"]
  assert tf.train.list_variables(out) == tf.train.list_variables(ckpt)
  original, saved = tf.train.load_checkpoint(ckpt), tf.train.load_checkpoint(out)
  for name, _ in tf.train.list_variables(ckpt):
    np.testing.assert_array_equal(saved.get_tensor(name),
                                  original.get_tensor(name), err_msg=name)


def test_encoder_alone_reports_the_heads_as_unused(fixtures_dir):
  config, ckpt = _small(fixtures_dir)
  report = checkpoints.load_checkpoint(BertModel(config), ckpt)
  assert len(report.loaded) == 55 and not report.missing
  assert report.unexpected == [
      "cls/predictions/output_bias", "cls/predictions/transform/LayerNorm/beta",
      "cls/predictions/transform/LayerNorm/gamma",
      "cls/predictions/transform/dense/bias",
      "cls/predictions/transform/dense/kernel",
      "cls/seq_relationship/output_bias", "cls/seq_relationship/output_weights"]
  assert "Unused checkpoint variables: cls/predictions/output_bias" in (
      report.summary())


def test_real_legacy_checkpoint_with_adam_slots_and_global_step(fixtures_dir):
  root = fixtures_dir / "keras_bert_tiny"
  config = BertConfig.from_json_file(str(root / "bert_config.json"))
  model = BertPretrainer(config)
  report = checkpoints.load_checkpoint(model, str(root / "bert_model.ckpt"))
  assert not report.missing and not report.unexpected
  assert len(report.loaded) == len(model.weights)
  assert "global_step" in report.skipped
  assert "bert/embeddings/word_embeddings/adam_m" in report.skipped
  assert len(report.skipped) == 2 * len(model.weights) + 1
  reader = tf.train.load_checkpoint(str(root / "bert_model.ckpt"))
  np.testing.assert_array_equal(
      model.bert.embeddings.word_embeddings.numpy(),
      reader.get_tensor("bert/embeddings/word_embeddings"))


def test_missing_variables_are_reported_by_name(fixtures_dir, tmp_path):
  config, ckpt = _small(fixtures_dir)
  model = BertModel(config)
  checkpoints.load_checkpoint(model, ckpt)
  partial = {n: v for n, v in checkpoints.variables_by_name(model).items()
             if not n.startswith("bert/pooler")}
  prefix = checkpoints.save_checkpoint(partial, str(tmp_path / "partial.ckpt"))
  report = checkpoints.load_checkpoint(BertModel(config), prefix)
  assert report.missing == ["bert/pooler/dense/kernel", "bert/pooler/dense/bias"]
  with pytest.raises(ValueError, match=r"lacks model variables: "
                     r"bert/pooler/dense/kernel, bert/pooler/dense/bias"):
    checkpoints.load_checkpoint(BertModel(config), prefix, allow_missing=False)


def test_shape_mismatch_names_the_variable_and_both_shapes(fixtures_dir):
  config, ckpt = _small(fixtures_dir)
  bigger = BertConfig.from_dict(dict(config.to_dict(), vocab_size=414))
  with pytest.raises(ValueError, match=(
      r"Shape mismatch for variable bert/embeddings/word_embeddings in "
      r"checkpoint .*bert_model.ckpt: the model expects \[414, 48\], the "
      r"checkpoint has \[413, 48\]")):
    checkpoints.load_checkpoint(BertModel(bigger), ckpt)


def test_bad_paths_are_clear_errors(fixtures_dir, tmp_path):
  config, _ = _small(fixtures_dir)
  with pytest.raises(ValueError, match=r"Checkpoint not found: .*nothing.ckpt "
                     r"\(expected the files"):
    checkpoints.load_checkpoint(BertModel(config), str(tmp_path / "nothing.ckpt"))
  with pytest.raises(ValueError, match=r"No checkpoint found in directory"):
    checkpoints.load_checkpoint(BertModel(config), str(tmp_path))


def test_directory_resolves_to_its_latest_checkpoint(fixtures_dir, tmp_path):
  config, ckpt = _small(fixtures_dir)
  model = BertModel(config)
  checkpoints.load_checkpoint(model, ckpt)
  prefix = checkpoints.save_checkpoint(model, str(tmp_path / "model.ckpt-7"))
  tf.compat.v1.train.update_checkpoint_state(str(tmp_path), prefix)
  assert checkpoints.resolve_checkpoint(str(tmp_path)) == prefix
  other = BertModel(config)
  checkpoints.load_checkpoint(other, str(tmp_path))
  np.testing.assert_array_equal(other.pooler.kernel.numpy(),
                                model.pooler.kernel.numpy())
