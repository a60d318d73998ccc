"""convert_checkpoint.py and bert_tf.interop with keras-hub presets (real keras-hub)."""

import json
import os
import shutil

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import interop
from bert_tf.modeling import config as config_lib
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertModel
from tests import script_runner
from tests import sentencepiece_models

CASES = [("original_bert_small", "bert_model.ckpt", "bert_config.json",
          "BertBackbone"),
         ("original_albert_small", "model.ckpt-best", "albert_config.json",
          "AlbertBackbone")]


def _tensors(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if not checkpoints.is_training_state(n)}


def _backbone_outputs(backbone, input_ids, input_mask, segment_ids):
  outputs = backbone({"token_ids": input_ids, "segment_ids": segment_ids,
                      "padding_mask": input_mask})
  return {k: np.asarray(v) for k, v in outputs.items()}


def _randomize(model, seed):
  """Gives every variable (LayerNorms and biases too) random values."""
  rng = np.random.default_rng(seed)
  for variable in model.weights:
    variable.assign(rng.normal(0, 0.2, variable.shape).astype(np.float32))


@pytest.mark.parametrize("model_dir,prefix,config_file,backbone_class", CASES)
def test_bert_tf_to_keras_hub_and_back(fixtures_dir, tmp_path, model_dir,
                                       prefix, config_file, backbone_class):
  root = fixtures_dir / model_dir
  source = str(root / prefix)
  preset = tmp_path / "preset"
  report = script_runner.run_main(
      "convert_checkpoint", "--input=" + source, "--output=%s" % preset,
      "--to=keras_hub", "--do_lower_case=true")
  original = _tensors(source)
  heads = sorted(n for n in original if n.startswith("cls/"))
  encoder = sorted(set(original) - set(heads))
  assert report.dropped == heads and report.written == encoder
  assert sorted(os.listdir(preset)) == [
      "assets", "config.json", "metadata.json", "model.weights.h5",
      "preprocessor.json", "tokenizer.json"]
  assert os.listdir(preset / "assets" / "tokenizer") == ["vocabulary.txt"]

  # keras-hub's own loader gives the original model's outputs.
  backbone = keras_hub.models.Backbone.from_preset(str(preset))
  assert type(backbone).__name__ == backbone_class
  io = np.load(root / "io.npz")
  outputs = _backbone_outputs(backbone, io["input_ids"], io["input_mask"],
                              io["segment_ids"])
  for name in ("sequence_output", "pooled_output"):
    np.testing.assert_allclose(outputs[name], io[name], atol=1e-5, rtol=0)

  # And back: every encoder tensor bitwise, with the config and vocabulary.
  back = tmp_path / "back"
  script_runner.run_main("convert_checkpoint", "--input=%s" % preset,
                         "--output=%s" % back, "--to=tf1")
  written = _tensors(str(back / "bert_model.ckpt"))
  assert sorted(written) == encoder
  for name in encoder:
    np.testing.assert_array_equal(written[name], original[name], err_msg=name)
  config = BertConfig.from_json_file(str(root / config_file)).to_dict()
  for key in config_lib.ALBERT_NO_OP_KEYS:  # not expressible, all no-ops
    config.pop(key, None)
  assert json.loads((back / "bert_config.json").read_text()) == config
  assert (back / "vocab.txt").read_bytes() == (root / "vocab.txt").read_bytes()


def test_keras_hub_text_classifier_loads_the_preset(fixtures_dir, tmp_path):
  root = fixtures_dir / "original_bert_small"
  interop.convert(str(root / "bert_model.ckpt"), str(tmp_path / "bert"),
                  "keras_hub", do_lower_case=True)
  classifier = keras_hub.models.BertTextClassifier.from_preset(
      str(tmp_path / "bert"), num_classes=2)
  assert classifier.preprocessor.tokenizer.lowercase
  assert np.asarray(classifier.predict(["The Man went to the store."],
                                       verbose=0)).shape == (1, 2)
  # ALBERT with a SentencePiece model gets keras-hub's AlbertTokenizer.
  spm_model = sentencepiece_models.train_albert_spm(
      fixtures_dir / "pretraining_data" / "sample_text.txt",
      tmp_path / "spiece", vocab_size=300)
  root = fixtures_dir / "original_albert_small"
  interop.convert(str(root / "model.ckpt-best"), str(tmp_path / "albert"),
                  "keras_hub", spm_model_file=spm_model)
  assert os.listdir(tmp_path / "albert" / "assets" / "tokenizer") == [
      "vocabulary.spm"]
  classifier = keras_hub.models.AlbertTextClassifier.from_preset(
      str(tmp_path / "albert"), num_classes=2)
  assert np.asarray(classifier.predict(["the man went to the store."],
                                       verbose=0)).shape == (1, 2)
  assert interop.read(str(tmp_path / "albert")).spm_model_file.endswith(
      "vocabulary.spm")


@pytest.mark.parametrize("albert", [False, True])
def test_preset_saved_by_keras_hub_loads_into_bert_model(tmp_path, albert):
  sizes = dict(vocabulary_size=37, num_layers=4, num_heads=2, hidden_dim=8,
               intermediate_dim=12, dropout=0.0, max_sequence_length=16,
               num_segments=3)
  if albert:
    # Two groups of two inner blocks: checks the group/inner order.
    backbone = keras_hub.models.AlbertBackbone(
        embedding_dim=6, num_groups=2, num_inner_repetitions=2, **sizes)
  else:
    backbone = keras_hub.models.BertBackbone(**sizes)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "Man"]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab,
                                               lowercase=False)
    tokenizer.save_to_preset(str(tmp_path))
  _randomize(backbone, seed=3)
  backbone.save_to_preset(str(tmp_path))

  weights = interop.read(str(tmp_path))
  config = weights.config
  assert interop.detect_format(str(tmp_path)) == "keras_hub"
  assert (config.vocab_size, config.num_hidden_layers, config.hidden_size,
          config.intermediate_size, config.max_position_embeddings,
          config.type_vocab_size, config.hidden_act) == (37, 4, 8, 12, 16, 3,
                                                         "gelu")
  if albert:
    assert (config.embedding_size, config.num_hidden_groups,
            config.inner_group_num) == (6, 2, 2)
  else:
    assert weights.do_lower_case is False
    assert open(weights.vocab_file).read().split() == vocab
  model = BertModel(config)
  report = checkpoints.load_checkpoint(model, str(tmp_path),
                                       allow_missing=False)
  assert report.unexpected == []

  rng = np.random.default_rng(0)
  input_ids = rng.integers(0, 37, (2, 9)).astype(np.int32)
  input_mask = np.ones((2, 9), np.int32)
  input_mask[1, 6:] = 0
  segment_ids = rng.integers(0, 3, (2, 9)).astype(np.int32)
  expected = _backbone_outputs(backbone, input_ids, input_mask, segment_ids)
  outputs = model({"input_ids": input_ids, "input_mask": input_mask,
                   "segment_ids": segment_ids})
  for name in ("sequence_output", "pooled_output"):
    np.testing.assert_allclose(np.asarray(outputs[name]), expected[name],
                               atol=1e-5, rtol=0)


def test_albert_without_projection_round_trips(fixtures_dir, tmp_path):
  # embedding_size = hidden_size: the original has no
  # embedding_hidden_mapping_in, keras-hub an identity projection.
  root = fixtures_dir / "original_albert_small"
  config = BertConfig.from_json_file(str(root / "albert_config.json"))
  config.embedding_size = config.hidden_size
  config.inner_group_num = 2
  model = BertModel(config)
  _randomize(model, seed=7)
  assert not any("embedding_hidden_mapping_in" in v.path
                 for v in model.weights)
  preset = tmp_path / "preset"
  interop.save(model, str(preset), "keras_hub")
  backbone = keras_hub.models.Backbone.from_preset(str(preset))
  io = np.load(root / "io.npz")
  expected = model({"input_ids": io["input_ids"],
                    "input_mask": io["input_mask"],
                    "segment_ids": io["segment_ids"]})
  outputs = _backbone_outputs(backbone, io["input_ids"], io["input_mask"],
                              io["segment_ids"])
  for name in ("sequence_output", "pooled_output"):
    np.testing.assert_allclose(outputs[name], np.asarray(expected[name]),
                               atol=1e-5, rtol=0)
  weights = interop.read(str(preset))
  variables = checkpoints.variables_by_name(model)
  assert sorted(weights.tensors) == sorted(variables)
  for name, variable in variables.items():
    np.testing.assert_array_equal(weights.tensors[name], variable.numpy())
  # A projection other than the identity has no ALBERT equivalent.
  _randomize(backbone.embeddings_projection, seed=1)
  backbone.save_to_preset(str(tmp_path / "projected"))
  with pytest.raises(ValueError, match=r"embedding_dim = hidden_dim = 48 and "
                     r"an embeddings_projection other than the identity"):
    interop.read(str(tmp_path / "projected"))


def test_bad_inputs_are_named(fixtures_dir, tmp_path):
  root = fixtures_dir / "original_bert_small"
  weights = interop.read(str(root / "bert_model.ckpt"))
  # keras-hub computes the tanh GELU only.
  weights.config.hidden_act = "gelu_erf"
  with pytest.raises(ValueError, match=r"hidden_act = 'gelu_erf' cannot be "
                     r"written to keras_hub.*tanh"):
    interop.write(weights, str(tmp_path / "erf"), "keras_hub")
  assert not os.path.exists(tmp_path / "erf")
  # Tensors that do not fit the config: named, with both shapes.
  weights.config.hidden_act = "gelu"
  weights.tensors["bert/encoder/layer_1/intermediate/dense/bias"] = np.zeros(
      [95], np.float32)
  with pytest.raises(ValueError, match=r"layer_1/intermediate/dense/bias: "
                     r"expected \[96\], found \[95\]"):
    interop.write(weights, str(tmp_path / "bad"), "keras_hub")
  assert sorted(os.listdir(tmp_path)) == []

  preset = tmp_path / "preset"
  interop.convert(str(root / "bert_model.ckpt"), str(preset), "keras_hub",
                  do_lower_case=True)
  # A model of another size: the mismatches named with both shapes.
  config = BertConfig.from_json_file(str(root / "bert_config.json"))
  config.intermediate_size = 64
  with pytest.raises(ValueError, match=r"does not fit its config: shape "
                     r"mismatches: bert/encoder/layer_0/intermediate/dense/"
                     r"bias: expected \[64\], found \[96\]"):
    checkpoints.load_checkpoint(BertModel(config), str(preset))
  # A preset saved by keras-nlp (keras-hub's former name) reads too.
  preset_config = json.loads((preset / "config.json").read_text())
  preset_config["registered_name"] = "keras_nlp>BertBackbone"
  (preset / "config.json").write_text(json.dumps(preset_config))
  assert interop.detect_format(str(preset)) == "keras_hub"
  assert sorted(interop.read(str(preset)).tensors) == sorted(
      interop.expected_shapes(config))
  # Another keras-hub model.
  other = tmp_path / "roberta"
  shutil.copytree(preset, other)
  preset_config["class_name"] = "RobertaBackbone"
  (other / "config.json").write_text(json.dumps(preset_config))
  with pytest.raises(ValueError, match=r"holds a RobertaBackbone; only "
                     r"BertBackbone and AlbertBackbone convert"):
    interop.read(str(other))
