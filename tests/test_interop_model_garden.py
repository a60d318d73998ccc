"""convert_checkpoint.py and bert_tf.interop with Model Garden encoder checkpoints.

The other side is the real `official.nlp` (tf-models-official, tf_keras): its
own converter, and encoders built with its own constructors.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.modeling import activations
from official.nlp.modeling import networks

from bert_tf import checkpoints
from bert_tf import interop
from bert_tf.interop import model_garden
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertModel
from tests import script_runner

CONVERTER = "official.nlp.tools.tf2_bert_encoder_checkpoint_converter"


def _tensors(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if not checkpoints.is_training_state(n)}


def _encoder_outputs(encoder, input_ids, input_mask, segment_ids):
  outputs = encoder(dict(input_word_ids=input_ids, input_mask=input_mask,
                         input_type_ids=segment_ids))
  if isinstance(outputs, list):  # AlbertEncoder's [sequence, pooled]
    outputs = dict(sequence_output=outputs[0], pooled_output=outputs[1])
  return {k: np.asarray(outputs[k])
          for k in ("sequence_output", "pooled_output")}


def _assert_outputs(outputs, expected):
  for name in ("sequence_output", "pooled_output"):
    np.testing.assert_allclose(np.asarray(outputs[name]), expected[name],
                               atol=1e-5, rtol=0, err_msg=name)


@pytest.fixture(scope="module")
def bert(fixtures_dir):
  root = fixtures_dir / "original_bert_small"
  return (root, BertConfig.from_json_file(str(root / "bert_config.json")),
          np.load(root / "io.npz"))


@pytest.mark.parametrize("converted_model,object_path", [
    ("encoder", "encoder"), ("pretrainer", "encoder/encoder_network")])
def test_model_garden_converter_output_to_bert_tf(bert, tmp_path,
                                                  converted_model,
                                                  object_path):
  root, config, io = bert
  converted = tmp_path / "converted"
  # Model Garden's own converter: a V1 BertEncoder under the name `encoder`,
  # or a BertPretrainerV2 holding it. Its main() in this process (its flags
  # are unregistered after, as the root scripts' are).
  script_runner.run_main(
      CONVERTER, "--bert_config_file=%s" % (root / "bert_config.json"),
      "--checkpoint_to_convert=%s" % (root / "bert_model.ckpt"),
      "--converted_checkpoint_path=%s" % (converted / "bert_model.ckpt"),
      "--converted_model=%s" % converted_model)
  assert interop.detect_format(str(converted)) == "model_garden"
  assert model_garden.find_encoder(tf.train.latest_checkpoint(
      str(converted))) == (object_path, "functional", 3)

  model = BertModel(config)
  checkpoints.load_checkpoint(model, str(converted), allow_missing=False)
  _assert_outputs(model({"input_ids": io["input_ids"],
                         "input_mask": io["input_mask"],
                         "segment_ids": io["segment_ids"]}), io)

  out = tmp_path / "tf1"
  report = script_runner.run_main(
      "convert_checkpoint", "--input=%s" % converted, "--output=%s" % out,
      "--to=tf1", "--bert_config_file=%s" % (root / "bert_config.json"))
  original = _tensors(str(root / "bert_model.ckpt"))
  encoder = sorted(n for n in original if not n.startswith("cls/"))
  assert report.written == encoder
  written = _tensors(str(out / "bert_model.ckpt"))
  for name in encoder:
    np.testing.assert_array_equal(written[name], original[name], err_msg=name)


def test_bert_tf_to_model_garden_and_back(bert, tmp_path):
  root, config, io = bert
  out = tmp_path / "mg"
  report = script_runner.run_main(
      "convert_checkpoint", "--input=%s" % (root / "bert_model.ckpt"),
      "--output=%s" % out, "--to=model_garden")
  original = _tensors(str(root / "bert_model.ckpt"))
  assert report.dropped == sorted(n for n in original if n.startswith("cls/"))
  assert sorted(os.listdir(out)) == [
      "bert_config.json", "bert_model.ckpt-1.data-00000-of-00001",
      "bert_model.ckpt-1.index", "checkpoint", "vocab.txt"]

  # Model Garden's BertEncoderV2, built by its own constructor, restores it.
  encoder = networks.BertEncoderV2(
      vocab_size=config.vocab_size, hidden_size=config.hidden_size,
      num_layers=config.num_hidden_layers,
      num_attention_heads=config.num_attention_heads,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size,
      inner_dim=config.intermediate_size, inner_activation=activations.gelu,
      output_dropout=0.0, attention_dropout=0.0)
  encoder(dict(input_word_ids=io["input_ids"], input_mask=io["input_mask"],
               input_type_ids=io["segment_ids"]))
  tf.train.Checkpoint(encoder=encoder).read(
      tf.train.latest_checkpoint(str(out))).assert_existing_objects_matched()
  _assert_outputs(_encoder_outputs(encoder, io["input_ids"], io["input_mask"],
                                   io["segment_ids"]), io)

  # And back, with the config and vocabulary written beside it.
  back = tmp_path / "back"
  script_runner.run_main("convert_checkpoint", "--input=%s" % out,
                         "--output=%s" % back, "--to=tf1")
  written = _tensors(str(back / "bert_model.ckpt"))
  assert sorted(written) == report.written
  for name in report.written:
    np.testing.assert_array_equal(written[name], original[name], err_msg=name)
  assert (BertConfig.from_json_file(str(back / "bert_config.json")).to_dict()
          == config.to_dict())
  assert (back / "vocab.txt").read_bytes() == (root / "vocab.txt").read_bytes()


@pytest.mark.parametrize("embedding_size", [16, 48])
def test_albert_with_one_group_is_model_garden_albert_encoder(
    fixtures_dir, tmp_path, embedding_size):
  root = fixtures_dir / "original_albert_small"
  config = BertConfig.from_json_file(str(root / "albert_config.json"))
  # Model Garden's AlbertEncoder shares one block across all layers.
  with pytest.raises(ValueError, match=r"cannot be a Model Garden "
                     r"AlbertEncoder.*found num_hidden_groups = 2"):
    interop.convert(str(root / "model.ckpt-best"), str(tmp_path / "x"),
                    "model_garden")
  config.num_hidden_groups = 1
  # 48 = hidden_size: no embedding_hidden_mapping_in, nor a projection in
  # AlbertEncoder.
  config.embedding_size = embedding_size
  config.hidden_act = "gelu_erf"  # exact GELU, Model Garden's tf_keras gelu
  model = BertModel(config)
  rng = np.random.default_rng(5)
  for variable in model.weights:
    variable.assign(rng.normal(0, 0.2, variable.shape).astype(np.float32))
  out = tmp_path / "mg"
  interop.save(model, str(out), "model_garden")

  encoder = networks.AlbertEncoder(
      vocab_size=config.vocab_size, embedding_width=config.embedding_size,
      hidden_size=config.hidden_size, num_layers=config.num_hidden_layers,
      num_attention_heads=config.num_attention_heads,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size,
      intermediate_size=config.intermediate_size,
      activation=tf_keras.activations.gelu, dropout_rate=0.0,
      attention_dropout_rate=0.0)
  tf.train.Checkpoint(encoder=encoder).read(
      tf.train.latest_checkpoint(str(out))).assert_existing_objects_matched()
  io = np.load(root / "io.npz")
  features = {"input_ids": io["input_ids"], "input_mask": io["input_mask"],
              "segment_ids": io["segment_ids"]}
  expected = {k: np.asarray(v) for k, v in model(features).items()}
  _assert_outputs(_encoder_outputs(encoder, io["input_ids"], io["input_mask"],
                                   io["segment_ids"]), expected)

  weights = interop.read(str(out))
  assert weights.config.to_dict() == config.to_dict()
  for name, variable in checkpoints.variables_by_name(model).items():
    np.testing.assert_array_equal(weights.tensors[name], variable.numpy(),
                                  err_msg=name)


def test_bad_inputs_are_named(bert, tmp_path):
  root, config, _ = bert
  out = tmp_path / "mg"
  interop.convert(str(root / "bert_model.ckpt"), str(out), "model_garden")
  bare = tmp_path / "bare"
  bare.mkdir()
  for name in os.listdir(out):
    if name.startswith("bert_model.ckpt") or name == "checkpoint":
      os.link(out / name, bare / name)
  with pytest.raises(ValueError, match=r"Model Garden checkpoint .*"
                     r"bert_model.ckpt-1 carries no config.*"
                     r"--bert_config_file"):
    interop.read(str(bare))
  assert interop.read(str(bare / "bert_model.ckpt-1"),
                      bert_config_file=str(root / "bert_config.json"))
  wrong = BertConfig.from_dict(config.to_dict())
  wrong.intermediate_size = 64
  with pytest.raises(ValueError, match=r"Model Garden checkpoint .* does not "
                     r"fit the config .*\"intermediate_size\": 64.*: .*"
                     r"shape \(96,\) .* shape \(64,\) and name .*"
                     r"layer_0/intermediate/bias"):
    interop.read(str(bare), config=wrong)
  wrong = BertConfig.from_dict(config.to_dict())
  wrong.num_hidden_layers = 4
  with pytest.raises(ValueError, match=r"does not fit the config .*: it holds "
                     r"3 Transformer blocks under encoder, the config's "
                     r"BertEncoderV2 has 4"):
    interop.read(str(bare), config=wrong)
  with pytest.raises(ValueError, match=r"No Model Garden encoder checkpoint "
                     r"at .*bert_model.ckpt"):
    interop.read(str(root / "bert_model.ckpt"), from_format="model_garden")
