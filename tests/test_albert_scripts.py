"""The root scripts with an original ALBERT config and checkpoint (`model.ckpt-best`)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

from absl import app
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.tasks import feature_extraction
from bert_tf import tokenization
from bert_tf.data import glue
from bert_tf.data import sentence_pairs
from bert_tf.data import record_format
from bert_tf.modeling import BertClassifier, BertConfig, BertModel, BertSquad
from bert_tf.training import metrics
import script_runner
import test_albert
from sentencepiece_models import train_albert_spm

ROOT = pathlib.Path(__file__).resolve().parents[1]

LINES = ["The rain had only ceased ||| with the gray streaks of morning",
         "Hypatia's chunk ||| red supply", "the settlement"]
EXTRACT_MAX_SEQ_LENGTH = 24


@pytest.fixture(scope="module")
def albert(fixtures_dir):
  root = fixtures_dir / "original_albert_small"
  return (root, BertConfig.from_json_file(str(root / "albert_config.json")),
          np.load(root / "io.npz"))


@pytest.fixture(scope="module")
def spm_model(fixtures_dir, tmp_path_factory):
  """A SentencePiece model (400 pieces) trained on the bundled sample text."""
  return train_albert_spm(
      fixtures_dir / "pretraining_data" / "sample_text.txt",
      tmp_path_factory.mktemp("spm") / "30k-clean")


def _run(script, *args, timeout=300):
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, str(ROOT / script)] + list(args),
                        env=env, capture_output=True, text=True,
                        timeout=timeout, cwd=str(ROOT))


def test_feature_extraction_gives_the_original_layers(albert):
  """The extraction path of extract_features.py on the fixture's own inputs."""
  root, config, io = albert
  tokenizer = tokenization.FullTokenizer(str(root / "vocab.txt"), True)
  model = BertModel(config)
  checkpoints.load_checkpoint(model, str(root / "model.ckpt-best"))
  features = []
  for ids, mask, types in zip(io["input_ids"], io["input_mask"],
                              io["segment_ids"]):
    length = int(mask.sum())
    features.append(sentence_pairs.PackedInputs(
        tokenizer.convert_ids_to_tokens(ids[:length].tolist()), ids.tolist(),
        mask.tolist(), types.tolist()))
  indexes = feature_extraction.parse_layer_indexes(
      "0,1,2,3,-1", config.num_encoder_outputs)
  results = feature_extraction.extract(model, features, indexes, batch_size=2)
  for row, (feature, values) in enumerate(zip(features, results)):
    line = json.loads(feature_extraction.to_json_line(
        row, feature.tokens, values, indexes))
    assert [f["token"] for f in line["features"]] == feature.tokens
    for position, token_features in enumerate(line["features"]):
      for layer in token_features["layers"]:
        name = "layer_%d" % (layer["index"] % 4)
        np.testing.assert_allclose(layer["values"], io[name][row, position],
                                   atol=1e-5, rtol=0, err_msg=name)


def _load_report(log):
  """The lines of `checkpoints.LoadReport.summary()` in a script's log.

  Returns:
    dict: "Loaded" -> "<n> variables from <prefix>", and "Newly initialized
    (not in the checkpoint)" / "Unused checkpoint variables" -> list of names
    (present only when the script logged them).
  """
  report = {}
  for line in log.splitlines():
    if "] Loaded " in line:
      report["Loaded"] = line.split("] Loaded ", 1)[1]
    for key in ("Newly initialized (not in the checkpoint)",
                "Unused checkpoint variables"):
      if line.startswith(key + ": "):
        report[key] = line[len(key) + 2:].split(", ")
  return report


def _run_extract_features(tmp_path, config_file, checkpoint, tokenizer_flag,
                          layers):
  """Runs extract_features.py on `LINES` (batch size 2).

  Args:
    tmp_path: directory for the input and output files.
    config_file: the --albert_config_file.
    checkpoint: the --init_checkpoint prefix.
    tokenizer_flag: "--vocab_file=..." or "--spm_model_file=...".
    layers: the --layers value, e.g. "-1,-4".

  Returns:
    (the script's stderr, its output JSON lines as dicts, one per line of
    `LINES`).
  """
  input_file = tmp_path / "input.txt"
  input_file.write_text("\n".join(LINES) + "\n")
  output_file = tmp_path / "out.jsonl"
  result = _run("extract_features.py",
                "--input_file=%s" % input_file,
                "--output_file=%s" % output_file,
                "--albert_config_file=%s" % config_file,
                "--init_checkpoint=%s" % checkpoint,
                tokenizer_flag,
                "--layers=%s" % layers,
                "--max_seq_length=%d" % EXTRACT_MAX_SEQ_LENGTH,
                "--batch_size=2")
  assert result.returncode == 0, result.stderr[-3000:]
  out = [json.loads(l) for l in output_file.read_text().splitlines()]
  assert len(out) == len(LINES)
  return result.stderr, out


def _pack_lines(tokenizer):
  """Returns the `PackedInputs` of each of `LINES`, as extract_features."""
  packed = []
  for line in LINES:
    a, _, b = line.partition(" ||| ")
    packed.append(sentence_pairs.pack_tokens(
        tokenizer.tokenize(a), tokenizer.tokenize(b) if b else None,
        EXTRACT_MAX_SEQ_LENGTH, tokenizer.convert_tokens_to_ids))
  return packed


@pytest.mark.slow
def test_extract_features_script_with_albert_flags(albert, tmp_path):
  root, config, _ = albert
  log, out = _run_extract_features(
      tmp_path, root / "albert_config.json", root / "model.ckpt-best",
      "--vocab_file=%s" % (root / "vocab.txt"), "-1,-4")
  # The encoder takes every bert/* variable; only the heads are unused.
  report = _load_report(log)
  assert report["Loaded"].startswith("41 variables from ")
  assert "Newly initialized (not in the checkpoint)" not in report
  assert report["Unused checkpoint variables"] == sorted(
      n for n, _ in tf.train.list_variables(str(root / "model.ckpt-best"))
      if n.startswith("cls/"))
  tokenizer = tokenization.FullTokenizer(str(root / "vocab.txt"), True)
  model = BertModel(config)
  checkpoints.load_checkpoint(model, str(root / "model.ckpt-best"))
  for packed, result_line in zip(_pack_lines(tokenizer), out):
    n = len(packed.tokens)
    layers = model({"input_ids": np.array([packed.input_ids[:n]]),
                    "segment_ids": np.array([packed.segment_ids[:n]])}
                   )["encoder_outputs"]
    assert [f["token"] for f in result_line["features"]] == packed.tokens
    for position, feature in enumerate(result_line["features"]):
      for layer in feature["layers"]:
        np.testing.assert_allclose(
            layer["values"], np.asarray(layers[layer["index"]])[0, position],
            atol=6e-6, rtol=0)


@pytest.mark.slow
def test_extract_features_script_on_groups_of_several_inner_blocks(
    spm_model, tmp_path):
  """6 layers in 3 groups of 2 inner blocks, SentencePiece, against numpy."""
  raw = test_albert.albert_config(vocab_size=400, max_position_embeddings=32)
  config_file = tmp_path / "albert_config.json"
  config_file.write_text(json.dumps(raw))
  model = BertModel(BertConfig.from_dict(raw))
  weights = test_albert.randomize_weights(model, seed=7)
  checkpoints.save_checkpoint(model, str(tmp_path / "model.ckpt-best"))
  _, out = _run_extract_features(
      tmp_path, config_file, tmp_path / "model.ckpt-best",
      "--spm_model_file=%s" % spm_model, "-1,-2,0")
  tokenizer = tokenization.FullTokenizer(None, True, spm_model_file=spm_model)
  for packed, result_line in zip(_pack_lines(tokenizer), out):
    assert [f["token"] for f in result_line["features"]] == packed.tokens
    assert packed.tokens[1].startswith("\u2581")  # SentencePiece pieces
    n = len(packed.tokens)
    expected = test_albert.numpy_albert(weights, raw, {
        "input_ids": np.array([packed.input_ids[:n]]),
        "input_mask": np.ones([1, n], np.int32),
        "segment_ids": np.array([packed.segment_ids[:n]])})["blocks"]
    assert len(expected) == 12  # one output per inner block, as the original
    for position, feature in enumerate(result_line["features"]):
      for layer in feature["layers"]:
        np.testing.assert_allclose(layer["values"],
                                   expected[layer["index"]][0, position],
                                   atol=1e-5, rtol=0)


def _write_io_records(io, path):
  """The fixture's three examples as pretraining records (SOP labels kept
  under `next_sentence_labels`, as ALBERT's data does)."""
  with tf.io.TFRecordWriter(str(path)) as writer:
    for i in range(3):
      values = {name: io[name][i] for name in
                ("input_ids", "input_mask", "segment_ids",
                 "masked_lm_positions", "masked_lm_ids", "masked_lm_weights")}
      values["next_sentence_labels"] = io["sentence_order_labels"][i]
      writer.write(record_format.features_to_example({
          name: (record_format.create_float_feature(np.ravel(v).tolist())
                 if name == "masked_lm_weights" else
                 record_format.create_int_feature(np.ravel(v).tolist()))
          for name, v in values.items()}))
  return str(path)


@pytest.mark.slow
def test_run_pretraining_evaluates_and_trains_from_the_albert_checkpoint(
    albert, tmp_path):
  root, _, io = albert
  data = _write_io_records(io, tmp_path / "io.tfrecord")
  common = ["--albert_config_file=%s" % (root / "albert_config.json"),
            "--input_file=%s" % data,
            "--init_checkpoint=%s" % (root / "model.ckpt-best"),
            "--max_seq_length=32", "--max_predictions_per_seq=5"]
  result = _run("run_pretraining.py", "--output_dir=%s" % (tmp_path / "eval"),
                "--do_eval", "--eval_batch_size=3", "--max_eval_steps=1",
                *common)
  assert result.returncode == 0, result.stderr[-3000:]
  report = _load_report(result.stderr)
  assert report["Loaded"].startswith("48 variables from ")
  assert "Newly initialized (not in the checkpoint)" not in report
  assert "Unused checkpoint variables" not in report
  got = metrics.read_eval_results(str(tmp_path / "eval" / "eval_results.txt"))
  # The original metrics: weighted mean of the per-prediction MLM loss, mean
  # SOP loss, and the Estimator's loss = total loss of the one batch.
  weights = io["masked_lm_weights"].reshape(-1)
  nll = -io["mlm_log_probs"][np.arange(15), io["masked_lm_ids"].reshape(-1)]
  assert got["masked_lm_loss"] == pytest.approx(
      (weights * nll).sum() / weights.sum(), abs=1e-5)
  assert got["next_sentence_loss"] == pytest.approx(float(io["sop_loss"]),
                                                     abs=1e-5)
  assert got["loss"] == pytest.approx(float(io["total_loss"]), abs=1e-5)

  out = tmp_path / "train"
  result = _run("run_pretraining.py", "--output_dir=%s" % out, "--do_train",
                "--train_batch_size=3", "--num_train_steps=2",
                "--num_warmup_steps=1", "--learning_rate=1e-3",
                "--optimizer=lamb", *common)
  assert result.returncode == 0, result.stderr[-3000:]
  report = _load_report(result.stderr)
  assert report["Loaded"].startswith("48 variables from ")
  assert "Newly initialized (not in the checkpoint)" not in report
  assert "Unused checkpoint variables" not in report
  names = dict(tf.train.list_variables(str(root / "model.ckpt-best")))
  written = dict(tf.train.list_variables(str(out / "model.ckpt-2")))
  expected = dict(names, global_step=[])
  for name, shape in names.items():
    expected[name + "/adam_m"] = expected[name + "/adam_v"] = shape
  assert written == expected
  before = tf.train.load_checkpoint(str(root / "model.ckpt-best"))
  after = tf.train.load_checkpoint(str(out / "model.ckpt-2"))
  name = ("bert/encoder/transformer/group_1/inner_group_0/"
          "ffn_1/intermediate/dense/kernel")
  assert not np.allclose(before.get_tensor(name), after.get_tensor(name))


def test_fine_tuning_models_load_the_albert_encoder(albert):
  root, config, _ = albert
  prefix = str(root / "model.ckpt-best")
  cls_names = sorted(n for n, _ in tf.train.list_variables(prefix)
                     if n.startswith("cls/"))
  classifier = BertClassifier(config, num_labels=3)
  report = checkpoints.load_checkpoint(classifier, prefix)
  assert sorted(report.missing) == ["output_bias", "output_weights"]
  assert report.unexpected == cls_names
  squad = BertSquad(config)
  report = checkpoints.load_checkpoint(squad, prefix)
  assert sorted(report.missing) == ["cls/squad/output_bias",
                                    "cls/squad/output_weights"]
  assert report.unexpected == cls_names


_SERVE = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # registers the tokenizer ops
    export_dir, io_file, out_file = sys.argv[1:]
    io = np.load(io_file)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    names = list(serve.structured_input_signature[1])
    out = serve(**{n: tf.constant(io[n]) for n in names})
    np.savez(out_file, **{k: v.numpy() for k, v in out.items()})
""")


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["encoder", "pretraining"])
def test_exported_albert_serves_the_original_outputs(albert, tmp_path,
                                                     model_type):
  root, _, io = albert
  export_dir = tmp_path / "export"
  result = _run("export_saved_model.py",
                "--albert_config_file=%s" % (root / "albert_config.json"),
                "--init_checkpoint=%s" % (root / "model.ckpt-best"),
                "--vocab_file=%s" % (root / "vocab.txt"),
                "--max_seq_length=32", "--max_predictions_per_seq=5",
                "--model_type=%s" % model_type,
                "--export_dir=%s" % export_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  script = tmp_path / "serve.py"
  script.write_text(_SERVE)
  served = subprocess.run(
      [sys.executable, str(script), str(export_dir),
       str(root / "io.npz"), str(tmp_path / "out.npz")],
      capture_output=True, text=True, timeout=300, cwd=tmp_path,
      env=dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="2"))
  assert served.returncode == 0, served.stderr[-3000:]
  out = np.load(tmp_path / "out.npz")
  if model_type == "encoder":
    pairs = (("sequence_output", "sequence_output"),
             ("pooled_output", "pooled_output"))
  else:
    pairs = (("mlm_log_probs", "mlm_log_probs"),
             ("nsp_log_probs", "sop_log_probs"))
  for name, fixture_name in pairs:
    want = io[fixture_name].reshape(out[name].shape)
    np.testing.assert_allclose(out[name], want, atol=1e-5, rtol=0,
                               err_msg=name)


@pytest.mark.slow
def test_run_classifier_fine_tunes_from_the_albert_checkpoint(albert,
                                                              fixtures_dir,
                                                              spm_model,
                                                              tmp_path):
  """With ALBERT's SentencePiece (its 400 ids index the checkpoint's table)."""
  root, _, _ = albert
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  lines = (fixtures_dir / "glue" / "MRPC" / "train.tsv").read_text(
      encoding="utf-8").splitlines(True)[:17]
  for name in ("train.tsv", "dev.tsv"):
    (data_dir / name).write_text("".join(lines), encoding="utf-8")
  out = tmp_path / "out"
  result = _run("run_classifier.py", "--task_name=MRPC",
                "--data_dir=%s" % data_dir,
                "--spm_model_file=%s" % spm_model,
                "--albert_config_file=%s" % (root / "albert_config.json"),
                "--init_checkpoint=%s" % (root / "model.ckpt-best"),
                "--output_dir=%s" % out, "--max_seq_length=40",
                "--do_train", "--do_eval", "--train_batch_size=8",
                "--num_train_epochs=1", "--learning_rate=1e-3", "--seed=1",
                timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  # Every encoder variable comes from the checkpoint; only the new head is
  # initialized and only the pretraining heads are left.
  cls_names = sorted(n for n, _ in tf.train.list_variables(
      str(root / "model.ckpt-best")) if n.startswith("cls/"))
  report = _load_report(result.stderr)
  assert report["Loaded"] == "41 variables from %s" % (root / "model.ckpt-best")
  assert sorted(report["Newly initialized (not in the checkpoint)"]) == [
      "output_bias", "output_weights"]
  assert report["Unused checkpoint variables"] == cls_names
  got = metrics.read_eval_results(str(out / "eval_results.txt"))
  assert got["global_step"] == 2
  written = dict(tf.train.list_variables(str(out / "model.ckpt-2")))
  encoder = {n: s for n, s in tf.train.list_variables(
      str(root / "model.ckpt-best")) if n.startswith("bert/")}
  assert {n: s for n, s in written.items() if n.startswith("bert/") and
          not n.endswith(("adam_m", "adam_v"))} == encoder
  assert written["output_weights"] == [2, 48]
  # The records hold the SentencePiece model's ids.
  tokenizer = tokenization.FullTokenizer(None, True, spm_model_file=spm_model)
  example = glue.get_processor("mrpc").get_train_examples(str(data_dir))[0]
  packed = sentence_pairs.pack_tokens(
      tokenizer.tokenize(example.text_a), tokenizer.tokenize(example.text_b),
      40, tokenizer.convert_tokens_to_ids)
  first = record_format.read_records(str(out / "train.tf_record"))[0]
  assert list(first["input_ids"]) == packed.input_ids
  assert packed.tokens[1].startswith("\u2581")


def test_extract_features_needs_a_vocab_or_a_sentencepiece_model(albert,
                                                                 tmp_path):
  root, _, _ = albert
  with pytest.raises(app.UsageError, match=r"--vocab_file \(WordPiece\) or "
                     r"--spm_model_file \(SentencePiece, ALBERT\) is required"):
    script_runner.run_main(
        "extract_features", "--input_file=%s" % tmp_path,
        "--output_file=%s" % (tmp_path / "out.jsonl"),
        "--albert_config_file=%s" % (root / "albert_config.json"),
        "--init_checkpoint=%s" % (root / "model.ckpt-best"))
  assert not (tmp_path / "out.jsonl").exists()
