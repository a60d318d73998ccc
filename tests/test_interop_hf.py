"""convert_checkpoint.py and bert_tf.interop on the Hugging Face format.

The Hugging Face side is real: directories laid out as transformers writes
them (checked against keras-hub's own Hugging Face reader), and reference
outputs computed in numpy from transformers' BertModel / AlbertModel math.
"""

import json
import os
import shutil
import subprocess
import sys

import keras_hub
import numpy as np
import pytest
import scipy.special
import tensorflow as tf
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from bert_tf import checkpoints
from bert_tf import interop
from bert_tf.modeling import BertClassifier
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertModel
from bert_tf.modeling import BertSquad
from tests import script_runner
from tests.test_interop_tf1 import FIXTURE_CHECKPOINTS
from tests.test_interop_tf1 import checkpoint_tensors

# ------------------------------------------- Hugging Face models, in numpy

SIZES = dict(vocab_size=50, hidden_size=16, num_attention_heads=4,
             intermediate_size=32, max_position_embeddings=20,
             type_vocab_size=2)
BERT_BLOCK = {"query": "attention.self.query", "key": "attention.self.key",
              "value": "attention.self.value",
              "attention_output": "attention.output.dense",
              "attention_norm": "attention.output.LayerNorm",
              "intermediate": "intermediate.dense", "output": "output.dense",
              "output_norm": "output.LayerNorm"}
ALBERT_BLOCK = {"query": "attention.query", "key": "attention.key",
                "value": "attention.value", "attention_output": "attention.dense",
                "attention_norm": "attention.LayerNorm", "intermediate": "ffn",
                "output": "ffn_output", "output_norm": "full_layer_layer_norm"}


def _hf_config(model_type, hidden_act, **albert):
  config = dict(SIZES, model_type=model_type, hidden_act=hidden_act,
                num_hidden_layers=albert.pop("num_hidden_layers", 2),
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0,
                architectures=["BertModel" if model_type == "bert"
                               else "AlbertModel"])
  config.update(albert)
  return config


def _random_state(config, rng):
  """Random weights under transformers' names (no model prefix)."""
  h, i = config["hidden_size"], config["intermediate_size"]
  e = config.get("embedding_size", h)
  state = {}

  def linear(name, n_out, n_in):
    state[name + ".weight"] = rng.normal(0, 0.3, (n_out, n_in))
    state[name + ".bias"] = rng.normal(0, 0.1, (n_out,))

  def norm(name, n):
    state[name + ".weight"] = 1 + rng.normal(0, 0.1, (n,))
    state[name + ".bias"] = rng.normal(0, 0.1, (n,))

  for table, rows in (("word", config["vocab_size"]),
                      ("position", config["max_position_embeddings"]),
                      ("token_type", config["type_vocab_size"])):
    state["embeddings.%s_embeddings.weight" % table] = rng.normal(
        0, 0.5, (rows, e))
  norm("embeddings.LayerNorm", e)
  if config["model_type"] == "albert":
    linear("encoder.embedding_hidden_mapping_in", h, e)
    linear("pooler", h, h)
    blocks = ["encoder.albert_layer_groups.%d.albert_layers.%d." % (g, j)
              for g in range(config["num_hidden_groups"])
              for j in range(config["inner_group_num"])]
    names = ALBERT_BLOCK
  else:
    linear("pooler.dense", h, h)
    blocks = ["encoder.layer.%d." % n
              for n in range(config["num_hidden_layers"])]
    names = BERT_BLOCK
  for block in blocks:
    for role in ("query", "key", "value", "attention_output"):
      linear(block + names[role], h, h)
    linear(block + names["intermediate"], i, h)
    linear(block + names["output"], h, i)
    norm(block + names["attention_norm"], h)
    norm(block + names["output_norm"], h)
  return {name: value.astype(np.float32) for name, value in state.items()}


ACTIVATIONS = {
    "gelu": lambda x: 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2))),
    "gelu_new": lambda x: 0.5 * x * (1 + np.tanh(
        np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
}


def _reference(config, state, input_ids, input_mask, segment_ids,
               hidden_act=None):
  """transformers' BertModel / AlbertModel forward pass, in float64 numpy."""
  s = {n: v.astype(np.float64) for n, v in state.items()}
  act = ACTIVATIONS[hidden_act or config["hidden_act"]]

  def linear(x, name):
    return x @ s[name + ".weight"].T + s[name + ".bias"]

  def norm(x, name):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + config["layer_norm_eps"]) *
            s[name + ".weight"] + s[name + ".bias"])

  batch, seq = input_ids.shape
  heads = config["num_attention_heads"]
  mask = (1.0 - input_mask[:, None, None, :]) * np.finfo(np.float32).min

  def attention(x, block, names):
    def split(t):
      return t.reshape(batch, seq, heads, -1).transpose(0, 2, 1, 3)
    q, k, v = (split(linear(x, block + names[r]))
               for r in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + mask
    probs = scipy.special.softmax(scores, axis=-1)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1)
    return norm(linear(context, block + names["attention_output"]) + x,
                block + names["attention_norm"])

  def layer(x, block, names):
    a = attention(x, block, names)
    f = linear(act(linear(a, block + names["intermediate"])),
               block + names["output"])
    return norm(f + a, block + names["output_norm"])

  x = (s["embeddings.word_embeddings.weight"][input_ids] +
       s["embeddings.token_type_embeddings.weight"][segment_ids] +
       s["embeddings.position_embeddings.weight"][np.arange(seq)])
  x = norm(x, "embeddings.LayerNorm")
  layers = config["num_hidden_layers"]
  if config["model_type"] == "albert":
    x = linear(x, "encoder.embedding_hidden_mapping_in")
    groups = config["num_hidden_groups"]
    for n in range(layers):
      group = int(n / (layers / groups))
      for inner in range(config["inner_group_num"]):
        x = layer(x, "encoder.albert_layer_groups.%d.albert_layers.%d." %
                  (group, inner), ALBERT_BLOCK)
    pooled = np.tanh(linear(x[:, 0], "pooler"))
  else:
    for n in range(layers):
      x = layer(x, "encoder.layer.%d." % n, BERT_BLOCK)
    pooled = np.tanh(linear(x[:, 0], "pooler.dense"))
  return x, pooled


def _save_hf_dir(directory, config, state, prefix=True, legacy_names=False,
                 shards=1):
  """Writes `state` as transformers does, or in an older spelling.

  Args:
    directory: the directory to create.
    config: the `config.json` dict.
    state: name -> array, names without the model prefix.
    prefix: whether encoder names carry `bert.` / `albert.`.
    legacy_names: LayerNorm parameters as `gamma`/`beta`.
    shards: the number of safetensors files (more than 1: with
      `model.safetensors.index.json`).
  """
  os.makedirs(directory)
  named = {}
  for name, value in state.items():
    if legacy_names and ("LayerNorm" in name or "layer_norm" in name):
      name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
    if prefix and name.startswith(("embeddings.", "encoder.", "pooler")):
      name = config["model_type"] + "." + name
    named[name] = value
  # The position_ids buffer older transformers versions saved.
  named[("bert." if prefix else "") + "embeddings.position_ids"] = np.arange(
      config["max_position_embeddings"], dtype=np.int64)[None]
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(config, f)
  if shards == 1:
    save_file(named, os.path.join(directory, "model.safetensors"),
              metadata={"format": "pt"})
    return
  weight_map = {}
  for k, names in enumerate(np.array_split(sorted(named), shards)):
    file_name = "model-%05d-of-%05d.safetensors" % (k + 1, shards)
    save_file({n: named[n] for n in names},
              os.path.join(directory, file_name), metadata={"format": "pt"})
    weight_map.update({n: file_name for n in names})
  with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": weight_map}, f)


def _inputs(rng):
  input_ids = rng.integers(0, SIZES["vocab_size"], (2, 12)).astype(np.int32)
  input_mask = np.ones((2, 12), np.int32)
  input_mask[1, 7:] = 0
  segment_ids = np.zeros((2, 12), np.int32)
  segment_ids[:, 5:] = 1
  return input_ids, input_mask, segment_ids


@pytest.mark.parametrize("model_type,hidden_act,layout,albert", [
    ("bert", "gelu", dict(), {}),
    ("bert", "gelu_new", dict(prefix=False, legacy_names=True, shards=3), {}),
    ("albert", "gelu_new", dict(shards=2),
     dict(embedding_size=8, num_hidden_layers=4, num_hidden_groups=2,
          inner_group_num=2)),
    ("albert", "gelu", dict(prefix=False, legacy_names=True),
     dict(embedding_size=8, num_hidden_layers=3, num_hidden_groups=1,
          inner_group_num=1)),
])
def test_hf_directory_loads_with_transformers_numbers(
    tmp_path, model_type, hidden_act, layout, albert):
  rng = np.random.default_rng(0)
  hf_config = _hf_config(model_type, hidden_act, **albert)
  state = _random_state(hf_config, rng)
  hf_dir = str(tmp_path / "hf")
  _save_hf_dir(hf_dir, hf_config, state, **layout)
  assert interop.detect_format(hf_dir) == "hf"

  weights = interop.read(hf_dir)
  assert weights.config.hidden_act == {"gelu": "gelu_erf",
                                       "gelu_new": "gelu"}[hidden_act]
  assert weights.is_albert == (model_type == "albert")
  model = BertModel(weights.config)
  report = checkpoints.load_checkpoint(model, hf_dir, allow_missing=False)
  assert report.unexpected == []
  input_ids, input_mask, segment_ids = _inputs(rng)
  outputs = model({"input_ids": input_ids, "input_mask": input_mask,
                   "segment_ids": segment_ids})
  sequence, pooled = _reference(hf_config, state, input_ids, input_mask,
                                segment_ids)
  np.testing.assert_allclose(outputs["sequence_output"], sequence, atol=1e-5)
  np.testing.assert_allclose(outputs["pooled_output"], pooled, atol=1e-5)
  # The two GELUs differ by more than the tolerance here: the test tells them
  # apart.
  other = {"gelu": "gelu_new", "gelu_new": "gelu"}[hidden_act]
  sequence_other, _ = _reference(hf_config, state, input_ids, input_mask,
                                 segment_ids, hidden_act=other)
  assert np.abs(sequence_other - sequence).max() > 1e-4


# --------------------------------------------- bert_tf -> HF -> keras-hub


@pytest.mark.parametrize("model_dir,prefix,backbone", [
    ("original_bert_small", "bert_model.ckpt", keras_hub.models.BertBackbone),
    ("original_albert_small", "model.ckpt-best",
     keras_hub.models.AlbertBackbone),
])
def test_converted_fixture_loads_in_keras_hub_with_original_numbers(
    fixtures_dir, tmp_path, model_dir, prefix, backbone):
  hf_dir = tmp_path / "hf"
  script_runner.run_main("convert_checkpoint",
                         "--input=%s" % (fixtures_dir / model_dir / prefix),
                         "--output=%s" % hf_dir, "--to=hf", "--do_lower_case")
  config = json.loads((hf_dir / "config.json").read_text())
  albert = model_dir.startswith("original_albert")
  assert config["model_type"] == ("albert" if albert else "bert")
  assert config["architectures"] == [
      "AlbertForPreTraining" if albert else "BertForPreTraining"]
  assert config["hidden_act"] == "gelu_new"
  assert config["layer_norm_eps"] == 1e-12
  tokenizer_config = json.loads(
      (hf_dir / "tokenizer_config.json").read_text())
  assert tokenizer_config["do_lower_case"] is True
  assert tokenizer_config["tokenizer_class"] == "BertTokenizer"
  assert interop.read(str(hf_dir)).do_lower_case is True

  io = np.load(fixtures_dir / model_dir / "io.npz")
  model = backbone.from_preset(str(hf_dir))
  outputs = model({"token_ids": io["input_ids"],
                   "segment_ids": io["segment_ids"],
                   "padding_mask": io["input_mask"]})
  np.testing.assert_allclose(outputs["sequence_output"],
                             io["sequence_output"], atol=1e-5)
  np.testing.assert_allclose(outputs["pooled_output"], io["pooled_output"],
                             atol=1e-5)
  if not albert:
    # keras-hub's Hugging Face tokenizer reader takes the files as written.
    tokenizer = keras_hub.models.BertTokenizer.from_preset(str(hf_dir))
    vocab = (fixtures_dir / model_dir / "vocab.txt").read_text().split("\n")
    assert tokenizer.vocabulary_size() == len([t for t in vocab if t])


# ---------------------------------------------------- tf1 -> HF -> tf1


@pytest.mark.parametrize("model_dir,prefix", FIXTURE_CHECKPOINTS)
def test_tf1_to_hf_to_tf1_keeps_every_tensor_bitwise(
    fixtures_dir, tmp_path, model_dir, prefix):
  # The fixture plus run_classifier's and run_squad's heads.
  rng = np.random.default_rng(1)
  weights = interop.read(str(fixtures_dir / model_dir / prefix))
  hidden = weights.config.hidden_size
  weights.tensors.update({
      "output_weights": rng.normal(size=(3, hidden)).astype(np.float32),
      "output_bias": rng.normal(size=(3,)).astype(np.float32),
      "cls/squad/output_weights": rng.normal(size=(2, hidden)).astype(
          np.float32),
      "cls/squad/output_bias": rng.normal(size=(2,)).astype(np.float32)})
  source = tmp_path / "tf1"
  interop.write(weights, str(source), "tf1")
  hf_report = script_runner.run_main("convert_checkpoint",
                                     "--input=%s" % source,
                                     "--output=%s" % (tmp_path / "hf"),
                                     "--to=hf")
  assert hf_report.dropped == []
  # The casing the TF1 format does not record, judged by the vocabulary.
  assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())[
      "do_lower_case"] is True
  back = tmp_path / "back"
  report = script_runner.run_main("convert_checkpoint",
                                  "--input=%s" % (tmp_path / "hf"),
                                  "--output=%s" % back, "--to=tf1")
  original = checkpoint_tensors(str(source / "bert_model.ckpt"))
  written = checkpoint_tensors(str(back / "bert_model.ckpt"))
  assert sorted(written) == sorted(original) == report.written
  for name, value in original.items():
    assert written[name].dtype == value.dtype, name
    np.testing.assert_array_equal(written[name], value, err_msg=name)
  config = BertConfig.from_json_file(str(back / "bert_config.json"))
  assert config.hidden_act == "gelu"
  assert (back / "vocab.txt").read_bytes() == (
      fixtures_dir / model_dir / "vocab.txt").read_bytes()


def test_task_models_save_to_hf_and_load_back(fixtures_dir, tmp_path):
  config = BertConfig.from_json_file(
      str(fixtures_dir / "original_bert_small" / "bert_config.json"))
  fixture = str(fixtures_dir / "original_bert_small" / "bert_model.ckpt")
  for build, architecture, head in (
      (lambda: BertClassifier(config, num_labels=3),
       "BertForSequenceClassification", ("classifier", "output_weights")),
      (lambda: BertSquad(config), "BertForQuestionAnswering",
       ("qa_outputs", "cls/squad/output_weights"))):
    model = build()
    checkpoints.load_checkpoint(model, fixture)
    out = tmp_path / model.name
    report = interop.save(model, str(out), "hf")
    assert report.dropped == []
    hf_config = json.loads((out / "config.json").read_text())
    assert hf_config["architectures"] == [architecture]
    if architecture == "BertForSequenceClassification":
      assert hf_config["id2label"] == {"0": "LABEL_0", "1": "LABEL_1",
                                       "2": "LABEL_2"}
    stored = load_file(str(out / "model.safetensors"))
    variables = checkpoints.variables_by_name(model)
    # The heads' [out, hidden] matrices are already the Linear layout; dense
    # kernels are transposed.
    np.testing.assert_array_equal(stored[head[0] + ".weight"],
                                  variables[head[1]].numpy())
    np.testing.assert_array_equal(
        stored["bert.encoder.layer.0.intermediate.dense.weight"],
        variables["bert/encoder/layer_0/intermediate/dense/kernel"].numpy().T)
    other = build()
    checkpoints.load_checkpoint(other, str(out), allow_missing=False)
    for a, b in zip(model.weights, other.weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------------------- bad input


@pytest.fixture(name="hf_dir")
def _hf_dir(fixtures_dir, tmp_path):
  """The BERT fixture converted to the Hugging Face format."""
  out = tmp_path / "hf"
  interop.convert(str(fixtures_dir / "original_bert_small" /
                      "bert_model.ckpt"), str(out), "hf")
  return out


def _edit_config(directory, **changes):
  path = directory / "config.json"
  config = json.loads(path.read_text())
  config.update(changes)
  path.write_text(json.dumps(config))


def test_bad_hf_inputs_are_named(hf_dir, tmp_path):
  good = tmp_path / "good"
  shutil.copytree(hf_dir, good)
  for changes, message in (
      (dict(model_type="roberta"), r"model_type 'roberta' is not supported"),
      (dict(hidden_act="swish"), r"hidden_act 'swish' has no bert_tf "
       r"equivalent \(expected one of .*gelu_new"),
      (dict(layer_norm_eps=1e-5), r"layer_norm_eps 1e-05 is not supported"),
      (dict(position_embedding_type="relative_key"),
       r"position_embedding_type 'relative_key' is not supported"),
      (dict(is_decoder=True), r"is_decoder is true")):
    _edit_config(hf_dir, **changes)
    with pytest.raises(ValueError, match=r"config\.json: " + message):
      interop.read(str(hf_dir))
    shutil.copy(good / "config.json", hf_dir / "config.json")

  # A config.json written before transformers recorded model_type.
  config = json.loads((good / "config.json").read_text())
  del config["model_type"]
  (hf_dir / "config.json").write_text(json.dumps(config))
  assert interop.detect_format(str(hf_dir)) == "hf"
  assert not interop.read(str(hf_dir)).is_albert
  shutil.copy(good / "config.json", hf_dir / "config.json")

  # Shapes that do not fit the config: named with both shapes.
  _edit_config(hf_dir, intermediate_size=64)
  with pytest.raises(ValueError, match=r"bert/encoder/layer_0/intermediate/"
                     r"dense/kernel: expected \[48, 64\], found \[48, 96\]"):
    interop.read(str(hf_dir))
  shutil.copy(good / "config.json", hf_dir / "config.json")

  # A missing tensor: named as stored and by its original name.
  stored = load_file(str(hf_dir / "model.safetensors"))
  del stored["bert.encoder.layer.2.output.LayerNorm.weight"]
  save_file(stored, str(hf_dir / "model.safetensors"))
  with pytest.raises(ValueError, match=r"lacks 1 tensors of the bert encoder"
                     r".*: bert\.encoder\.layer\.2\.output\.LayerNorm\.weight "
                     r"\(bert/encoder/layer_2/output/LayerNorm/gamma\)"):
    interop.read(str(hf_dir))

  # Only PyTorch weights: the way to convert them.
  torch_dir = tmp_path / "torch"
  torch_dir.mkdir()
  shutil.copy(good / "config.json", torch_dir / "config.json")
  (torch_dir / "pytorch_model.bin").write_bytes(b"PK\x03\x04")
  assert interop.detect_format(str(torch_dir)) == "hf"
  with pytest.raises(ValueError, match=r"holds PyTorch weights "
                     r"\(pytorch_model\.bin\) but no model\.safetensors.*"
                     r"save_pretrained\(dir, safe_serialization=True\)"):
    interop.convert(str(torch_dir), str(tmp_path / "out"), "tf1")
  assert not (tmp_path / "out").exists()

  # A config.json that is not JSON is named.
  (hf_dir / "config.json").write_text("{model_type: bert")
  with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
    interop.read(str(hf_dir))

  # A keras-hub preset's config.json (no model_type) is not claimed.
  preset = tmp_path / "preset"
  preset.mkdir()
  (preset / "config.json").write_text(json.dumps(
      {"module": "keras_hub.src.models.bert.bert_backbone",
       "class_name": "BertBackbone", "config": {}}))
  (preset / "metadata.json").write_text("{}")
  (preset / "model.weights.h5").write_bytes(b"")
  from bert_tf.interop import hf  # pylint: disable=g-import-not-at-top
  assert not hf.detect(str(preset))


def test_untied_decoder_leaves_the_masked_lm_head_out(hf_dir):
  stored = load_file(str(hf_dir / "model.safetensors"))
  assert "cls.predictions.decoder.weight" not in stored  # tied away
  tied = interop.read(str(hf_dir))
  assert tied.has_pretraining_heads
  # Tied and stored (older transformers): the same weights.
  stored["cls.predictions.decoder.weight"] = stored[
      "bert.embeddings.word_embeddings.weight"]
  stored["cls.predictions.decoder.bias"] = stored["cls.predictions.bias"]
  save_file(stored, str(hf_dir / "model.safetensors"))
  both = interop.read(str(hf_dir))
  assert sorted(both.tensors) == sorted(tied.tensors)
  # Untied: bert_tf's head cannot express it; the encoder still loads.
  stored["cls.predictions.decoder.weight"] = stored[
      "cls.predictions.decoder.weight"] + 1
  save_file(stored, str(hf_dir / "model.safetensors"))
  untied = interop.read(str(hf_dir))
  assert not untied.has_pretraining_heads
  assert untied.has_next_sentence_head
  assert sorted(untied.tensors) == sorted(
      n for n in tied.tensors if not n.startswith("cls/predictions/"))


def test_directory_without_pooler_loads_the_rest(fixtures_dir, hf_dir,
                                                 tmp_path):
  # transformers' BertForMaskedLM (also *ForQuestionAnswering,
  # *ForTokenClassification) has no pooler.
  stored = load_file(str(hf_dir / "model.safetensors"))
  for name in ("bert.pooler.dense.weight", "bert.pooler.dense.bias",
               "cls.seq_relationship.weight", "cls.seq_relationship.bias"):
    del stored[name]
  save_file(stored, str(hf_dir / "model.safetensors"))
  _edit_config(hf_dir, architectures=["BertForMaskedLM"])
  weights = interop.read(str(hf_dir))
  assert not weights.has_pooler and weights.has_pretraining_heads
  model = BertModel(weights.config)
  report = checkpoints.load_checkpoint(model, str(hf_dir))
  assert sorted(report.missing) == ["bert/pooler/dense/bias",
                            "bert/pooler/dense/kernel"]
  io = np.load(fixtures_dir / "original_bert_small" / "io.npz")
  outputs = model({"input_ids": io["input_ids"],
                   "input_mask": io["input_mask"],
                   "segment_ids": io["segment_ids"]})
  np.testing.assert_allclose(outputs["sequence_output"],
                             io["sequence_output"], atol=1e-5)
  report = interop.convert(str(hf_dir), str(tmp_path / "tf1"), "tf1")
  assert not any(n.startswith("bert/pooler/") for n in report.written)
  interop.convert(str(tmp_path / "tf1"), str(tmp_path / "hf2"), "hf")
  assert json.loads((tmp_path / "hf2" / "config.json").read_text())[
      "architectures"] == ["BertForMaskedLM"]


# ------------------------------------------------------------------ GELU


def test_gelu_names_round_trip(hf_dir, tmp_path, caplog):
  # The original's tanh "gelu" is Hugging Face's "gelu_new" ...
  assert json.loads((hf_dir / "config.json").read_text())[
      "hidden_act"] == "gelu_new"
  assert interop.read(str(hf_dir)).config.hidden_act == "gelu"
  for tanh_name in ("gelu_pytorch_tanh", "gelu_fast"):
    _edit_config(hf_dir, hidden_act=tanh_name)
    assert interop.read(str(hf_dir)).config.hidden_act == "gelu"
  # ... and Hugging Face's exact "gelu" is bert_tf's "gelu_erf", both ways.
  _edit_config(hf_dir, hidden_act="gelu")
  tf1_dir = tmp_path / "tf1"
  interop.convert(str(hf_dir), str(tf1_dir), "tf1")
  assert BertConfig.from_json_file(
      str(tf1_dir / "bert_config.json")).hidden_act == "gelu_erf"
  interop.convert(str(tf1_dir), str(tmp_path / "hf2"), "hf")
  assert json.loads((tmp_path / "hf2" / "config.json").read_text())[
      "hidden_act"] == "gelu"
  # A model built from another config (here the original's tanh "gelu")
  # loads, with a warning naming the difference.
  config = interop.read(str(tmp_path / "tf1")).config
  config.hidden_act = "gelu"
  model = BertModel(config)
  checkpoints.load_checkpoint(model, str(hf_dir), allow_missing=False)
  assert "hidden_act 'gelu' (config.json: 'gelu_erf')" in caplog.text


def test_half_precision_checkpoints_load(tmp_path):
  # Hugging Face checkpoints are often stored in float16 or bfloat16 (which
  # numpy lacks: written here through safetensors' TensorFlow API).
  from safetensors.tensorflow import save_file as save_tf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(2)
  hf_config = _hf_config("bert", "gelu")
  state = _random_state(hf_config, rng)
  for dtype in (tf.float16, tf.bfloat16):
    hf_dir = tmp_path / dtype.name
    _save_hf_dir(str(hf_dir), hf_config, state)
    stored = load_file(str(hf_dir / "model.safetensors"))
    save_tf({n: tf.cast(v, dtype) if v.dtype == np.float32 else
             tf.constant(v) for n, v in stored.items()},
            str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
    rounded = {n: tf.cast(tf.cast(v, dtype), tf.float32).numpy()
               for n, v in state.items()}
    model = BertModel(interop.read(str(hf_dir)).config)
    checkpoints.load_checkpoint(model, str(hf_dir), allow_missing=False)
    input_ids, input_mask, segment_ids = _inputs(rng)
    outputs = model({"input_ids": input_ids, "input_mask": input_mask,
                     "segment_ids": segment_ids})
    sequence, _ = _reference(hf_config, rounded, input_ids, input_mask,
                             segment_ids)
    np.testing.assert_allclose(outputs["sequence_output"], sequence,
                               atol=1e-5)
    # On to the TF1 format and back, in the stored precision.
    tf1_dir, hf_again = tmp_path / (dtype.name + "_tf1"), tmp_path / (
        dtype.name + "_hf")
    interop.convert(str(hf_dir), str(tf1_dir), "tf1")
    tensors = checkpoint_tensors(str(tf1_dir / "bert_model.ckpt"))
    assert tensors["bert/pooler/dense/kernel"].dtype == dtype.as_numpy_dtype
    interop.convert(str(tf1_dir), str(hf_again), "hf")
    first, again = interop.read(str(hf_dir)), interop.read(str(hf_again))
    for name, value in first.tensors.items():
      assert again.tensors[name].dtype == value.dtype, name
      np.testing.assert_array_equal(again.tensors[name], value, err_msg=name)


def test_sentencepiece_model_goes_with_albert(fixtures_dir, tmp_path):
  from tests import sentencepiece_models  # pylint: disable=g-import-not-at-top
  spm_model = sentencepiece_models.train_albert_spm(
      fixtures_dir / "pretraining_data" / "sample_text.txt", tmp_path / "sp",
      vocab_size=413)
  hf_dir = tmp_path / "hf"
  script_runner.run_main(
      "convert_checkpoint", "--input=%s" % (
          fixtures_dir / "original_albert_small" / "model.ckpt-best"),
      "--output=%s" % hf_dir, "--to=hf", "--spm_model_file=%s" % spm_model,
      "--do_lower_case")
  assert sorted(os.listdir(hf_dir)) == [
      "config.json", "model.safetensors", "special_tokens_map.json",
      "spiece.model", "tokenizer_config.json"]
  tokenizer_config = json.loads(
      (hf_dir / "tokenizer_config.json").read_text())
  assert tokenizer_config["tokenizer_class"] == "AlbertTokenizer"
  # keras-hub's Hugging Face reader takes the SentencePiece model.
  tokenizer = keras_hub.models.AlbertTokenizer.from_preset(str(hf_dir))
  assert tokenizer.vocabulary_size() == 413
  weights = interop.read(str(hf_dir))
  assert weights.spm_model_file == str(hf_dir / "spiece.model")
  assert weights.vocab_file is None and weights.do_lower_case is True


def test_command_line_exits_cleanly(hf_dir, tmp_path):
  # absl's app.run exits with what main returns: status 0, not the report.
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable, os.path.join(root, "convert_checkpoint.py"),
             "--input=%s" % hf_dir, "--output=%s" % (tmp_path / "tf1"),
             "--to=tf1"]
  done = subprocess.run(command, env=env, capture_output=True, text=True,
                        check=False, timeout=300)
  assert done.returncode == 0, done.stderr
  assert (tmp_path / "tf1" / "bert_model.ckpt.index").exists()


def test_albert_without_projection(tmp_path):
  # embedding_size == hidden_size: the original ALBERT has no
  # embedding_hidden_mapping_in; transformers' (and keras-hub's) always
  # project, by the identity here.
  config = BertConfig.from_dict(dict(
      SIZES, hidden_act="gelu", num_hidden_layers=2, hidden_dropout_prob=0.0,
      attention_probs_dropout_prob=0.0, initializer_range=0.5,
      embedding_size=SIZES["hidden_size"], num_hidden_groups=1,
      inner_group_num=1))
  model = BertModel(config)
  hf_dir = tmp_path / "hf"
  report = interop.save(model, str(hf_dir), "hf")
  assert report.dropped == []
  stored = load_file(str(hf_dir / "model.safetensors"))
  np.testing.assert_array_equal(
      stored["albert.encoder.embedding_hidden_mapping_in.weight"],
      np.eye(SIZES["hidden_size"]))
  input_ids, input_mask, segment_ids = _inputs(np.random.default_rng(3))
  expected = model({"input_ids": input_ids, "input_mask": input_mask,
                    "segment_ids": segment_ids})
  outputs = keras_hub.models.AlbertBackbone.from_preset(str(hf_dir))(
      {"token_ids": input_ids, "segment_ids": segment_ids,
       "padding_mask": input_mask})
  np.testing.assert_allclose(outputs["sequence_output"],
                             expected["sequence_output"], atol=1e-5)
  weights = interop.read(str(hf_dir))
  assert sorted(weights.tensors) == sorted(report.written)
  # Another projection cannot be expressed without one.
  stored["albert.encoder.embedding_hidden_mapping_in.weight"] *= 2
  save_file(stored, str(hf_dir / "model.safetensors"))
  with pytest.raises(ValueError, match=r"albert\.encoder\.embedding_hidden_"
                     r"mapping_in is not the identity"):
    interop.read(str(hf_dir))


@pytest.mark.parametrize("vocab,lower", [("uncased_vocab.txt", True),
                                         ("cased_vocab.txt", False),
                                         ("chinese_vocab.txt", True)])
def test_casing_unknown_to_the_input_is_judged_by_the_vocabulary(
    fixtures_dir, vocab, lower):
  assert interop.weights.infer_do_lower_case(
      vocab_file=str(fixtures_dir / "vocab" / vocab)) is lower
