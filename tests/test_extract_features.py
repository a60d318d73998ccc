"""extract_features.py: the original flags, packing and JSON-lines output."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bert_tf import checkpoints
from bert_tf.tasks import feature_extraction
from bert_tf import tokenization
from bert_tf.modeling import BertConfig, BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LINES = [
    "The rain had only ceased ||| with the gray streaks of morning",
    "The quick brown fox.",
    "",
    "Hypatia's chunk ||| red supply",
]


@pytest.fixture(scope="module")
def small(fixtures_dir):
  root = fixtures_dir / "original_bert_small"
  config = BertConfig.from_json_file(str(root / "bert_config.json"))
  tokenizer = tokenization.FullTokenizer(str(root / "vocab.txt"), True)
  ckpt = str(root / "bert_model.ckpt")
  model = BertModel(config)
  checkpoints.load_checkpoint(model, ckpt)
  return config, tokenizer, ckpt, model


def _run(small, tmp_path, lines, **kwargs):
  config, tokenizer, ckpt, _ = small
  input_file = tmp_path / "input.txt"
  input_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
  output_file = tmp_path / "output.jsonl"
  feature_extraction.run(str(input_file), str(output_file), config, ckpt,
                         tokenizer, **kwargs)
  return [json.loads(line) for line in output_file.read_text().splitlines()]


def test_tokens_and_values_equal_the_encoder_on_each_example(small, tmp_path):
  _, tokenizer, _, model = small
  out = _run(small, tmp_path, LINES, layers="-1,0", max_seq_length=32,
             batch_size=3)
  assert [o["linex_index"] for o in out] == [0, 1, 2, 3]
  assert [f["token"] for f in out[3]["features"]] == [
      "[CLS]", "hypatia", "'", "s", "chunk", "[SEP]", "red", "supply", "[SEP]"]
  assert [f["token"] for f in out[2]["features"]] == ["[CLS]", "[SEP]"]
  assert list(out[0]["features"][0]) == ["token", "layers"]
  assert list(out[0]) == ["linex_index", "features"]
  # Each example alone, unpadded, through the encoder: padding and batching
  # must not change a number, and values are rounded to 6 places.
  for line, result in zip(LINES, out):
    a, _, b = line.partition(" ||| ")
    tokens = ["[CLS]"] + tokenizer.tokenize(a) + ["[SEP]"]
    types = [0] * len(tokens)
    if b:
      tokens += tokenizer.tokenize(b) + ["[SEP]"]
      types += [1] * (len(tokens) - len(types))
    assert [f["token"] for f in result["features"]] == tokens
    layers = model({"input_ids": np.array([tokenizer.convert_tokens_to_ids(
        tokens)]), "segment_ids": np.array([types])})["encoder_outputs"]
    for feature, position in zip(result["features"], range(len(tokens))):
      assert [l["index"] for l in feature["layers"]] == [-1, 0]
      for layer, index in zip(feature["layers"], (-1, 0)):
        expected = np.asarray(layers[index])[0, position]
        np.testing.assert_allclose(layer["values"], expected, atol=6e-6)
        assert layer["values"] == [round(float(v), 6) for v in layer["values"]]


def test_truncation_keeps_the_original_rule(small, tmp_path):
  long_a = " ".join(["red"] * 10)
  out = _run(small, tmp_path, [long_a + " ||| supply supply", long_a],
             layers="-1", max_seq_length=8)
  # Pair: the longer side loses tokens first, total 8 - 3 = 5 tokens.
  assert [f["token"] for f in out[0]["features"]] == [
      "[CLS]", "red", "red", "red", "[SEP]", "supply", "supply", "[SEP]"]
  assert [f["token"] for f in out[1]["features"]] == ["[CLS]"] + ["red"] * 6 + [
      "[SEP]"]


def test_bad_flags_are_clear_errors(small, tmp_path):
  with pytest.raises(ValueError, match=r"--layers index 3 is out of range for "
                     r"a model with 3 layers \(expected -3..2\)"):
    _run(small, tmp_path, LINES, layers="-1,3", max_seq_length=32)
  with pytest.raises(ValueError, match=r"--layers must be comma-separated "
                     r"integers, found '-1,x'"):
    _run(small, tmp_path, LINES, layers="-1,x", max_seq_length=32)
  with pytest.raises(ValueError, match=r"Cannot use sequence length 41 because "
                     r"the BERT model was only trained up to sequence length 40"):
    _run(small, tmp_path, LINES, max_seq_length=41)
  config, tokenizer, ckpt, _ = small
  with pytest.raises(ValueError, match=r"--input_file not found: .*nope.txt"):
    feature_extraction.run(str(tmp_path / "nope.txt"), str(tmp_path / "o"),
                           config, ckpt, tokenizer, layers="-1",
                           max_seq_length=32)
  assert not (tmp_path / "o").exists()


def test_script_on_a_real_legacy_checkpoint_with_adam_slots(fixtures_dir,
                                                            tmp_path):
  root = fixtures_dir / "keras_bert_tiny"
  input_file = tmp_path / "in.txt"
  input_file.write_text("all work and no play ||| makes jack a dull boy\n")
  output_file = tmp_path / "out.jsonl"
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "extract_features.py"),
       "--input_file=%s" % input_file, "--output_file=%s" % output_file,
       "--vocab_file=%s" % (root / "vocab.txt"),
       "--bert_config_file=%s" % (root / "bert_config.json"),
       "--init_checkpoint=%s" % (root / "bert_model.ckpt"),
       "--max_seq_length=16", "--layers=-1,-2"],
      capture_output=True, text=True, cwd=tmp_path, timeout=300)
  assert result.returncode == 0, result.stderr
  out = [json.loads(l) for l in output_file.read_text().splitlines()]
  assert [f["token"] for f in out[0]["features"]] == [
      "[CLS]", "all", "work", "and", "no", "play", "[SEP]", "makes", "jack",
      "a", "dull", "boy", "[SEP]"]
  # The same numbers as the encoder loaded in-process from that checkpoint.
  config = BertConfig.from_json_file(str(root / "bert_config.json"))
  model = BertModel(config)
  checkpoints.load_checkpoint(model, str(root / "bert_model.ckpt"))
  ids = [2, 5, 6, 7, 8, 9, 3, 10, 11, 12, 13, 14, 3]
  types = [0] * 7 + [1] * 6
  layers = model({"input_ids": np.array([ids]),
                  "segment_ids": np.array([types])})["encoder_outputs"]
  for index, j in ((-1, 0), (-2, 1)):
    got = np.array([f["layers"][j]["values"] for f in out[0]["features"]])
    np.testing.assert_allclose(got, np.asarray(layers[index])[0], atol=6e-6)


def test_script_requires_the_original_flags(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "extract_features.py")],
      capture_output=True, text=True, cwd=tmp_path, timeout=300)
  assert result.returncode != 0
  assert "Flag --input_file must have a value other than None" in result.stderr
