"""Dynamic padding: batches of similar lengths cut to their longest example.

The pipeline (`bert_tf.data.dynamic_padding`) on real fine-tuning records;
the scripts with and without `--dynamic_padding` on the fixtures' small BERT
give the same outputs (1e-5) in input order: run_classifier's
`test_results.tsv` and `eval_results.txt`, extract_features' JSON lines,
run_squad's logits at every real position; one trace serves every length.
The examples are shortened MRPC pairs, SQuAD questions on short contexts and
lines of varied lengths, so that batches are really cut (the fixtures' model
has 40 positions).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import tokenization
from bert_tf.data import dynamic_padding
from bert_tf.data import glue
from bert_tf.data import squad as squad_data
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertSquad
from bert_tf.tasks import classifier
from bert_tf.tasks import inference
from bert_tf.tasks import squad
from bert_tf.training import metrics
from bert_tf.training import optimization
from bert_tf.training import trainer as trainer_lib

import script_runner
from test_distribution import TWO_CPUS


@pytest.fixture(scope="module")
def small(fixtures_dir):
  pretrained = fixtures_dir / "original_bert_small" / "pretrained"
  return dict(
      dir=pretrained,
      config=BertConfig.from_json_file(str(pretrained / "bert_config.json")),
      tokenizer=tokenization.FullTokenizer(str(pretrained / "vocab.txt"),
                                           True))


def _short_mrpc(fixtures_dir, path, name, count):
  """MRPC pairs cut to 1..9 (+0..3) words: lengths from 6 to 40 tokens."""
  lines = (fixtures_dir / "glue" / "MRPC" / name).read_text(
      encoding="utf-8").splitlines(True)
  out = [lines[0]]
  for i, line in enumerate(lines[1:count + 1]):
    columns = line.rstrip("\n").split("\t")
    columns[3] = " ".join(columns[3].split()[:1 + i % 9])
    columns[4] = " ".join(columns[4].split()[:1 + i % 9 + i % 4])
    out.append("\t".join(columns) + "\n")
  path.write_text("".join(out), encoding="utf-8")


@pytest.fixture(scope="module")
def mrpc_records(fixtures_dir, small, tmp_path_factory):
  """40 shortened MRPC dev pairs written as run_classifier's records."""
  root = tmp_path_factory.mktemp("records")
  _short_mrpc(fixtures_dir, root / "dev.tsv", "dev.tsv", 40)
  processor = glue.get_processor("mrpc")
  examples = processor.get_dev_examples(str(root))
  path = str(root / "dev.tf_record")
  classifier.write_examples(examples, processor, 40, small["tokenizer"],
                            path, log_examples=0)
  return path


def _batches(dataset):
  return list(dataset.as_numpy_iterator())


# --------------------------------------------------------------- pipeline --


def test_lengths_round_up_to_eight_but_not_past_max_seq_length():
  got = [int(dynamic_padding.padded_length(n, 40)) for n in range(1, 41)]
  assert got == [8] * 8 + [16] * 8 + [24] * 8 + [32] * 8 + [40] * 8
  assert int(dynamic_padding.padded_length(33, 36)) == 36


def test_cut_keeps_every_position_a_feature_points_at():
  mask = np.zeros([2, 40], np.int32)
  mask[0, :5] = mask[1, :3] = 1
  features = {"input_ids": mask * 7, "input_mask": mask,
              "segment_ids": mask, "label_ids": np.array([0, 1])}
  assert dynamic_padding.cut_batch(features, 40)["input_ids"].shape == (2, 8)
  cut = dynamic_padding.cut_batch(
      dict(features, start_positions=np.array([2, 19])), 40)
  assert cut["input_mask"].shape == (2, 24)  # position 19 kept
  np.testing.assert_array_equal(cut["input_mask"], mask[:, :24])
  np.testing.assert_array_equal(cut["label_ids"], [0, 1])
  cut = dynamic_padding.cut_batch(
      dict(features, masked_lm_positions=np.array([[1, 2, 0], [9, 0, 0]])),
      40)
  assert cut["segment_ids"].shape == (2, 16)


def test_eval_batches_hold_every_record_once_sorted_within_windows(
    mrpc_records):
  fixed = _batches(glue.file_based_dataset(mrpc_records, 40, 4, False, False))
  dynamic = _batches(glue.file_based_dataset(mrpc_records, 40, 4, False,
                                             False, dynamic_padding=True))
  records = {k: np.concatenate([b[k] for b in fixed]) for k in fixed[0]}
  lengths = records["input_mask"].sum(axis=1)
  assert len(set(lengths)) > 10 and max(lengths) == 40
  shapes = [b["input_ids"].shape for b in dynamic]
  assert [s[0] for s in shapes] == [4] * 10
  assert {s[1] for s in shapes} == {24, 32, 40}
  index = np.concatenate([b["example_index"] for b in dynamic])
  assert sorted(index) == list(range(40))
  # Sorted by length within each window of 8 batches (32 examples).
  assert sorted(index[:32]) == list(range(32))
  for window in (index[:32], index[32:]):
    assert list(lengths[window]) == sorted(lengths[window])
  for batch in dynamic:
    rows = batch["example_index"]
    width = batch["input_ids"].shape[1]
    assert width == min(40, -(-lengths[rows].max() // 8) * 8)
    for key in ("input_ids", "input_mask", "segment_ids"):
      np.testing.assert_array_equal(batch[key], records[key][rows, :width])
      assert not records[key][rows, width:].any()
    np.testing.assert_array_equal(batch["label_ids"],
                                  records["label_ids"][rows])


def test_training_batches_are_reproducible_from_the_seed(mrpc_records):
  def batches(seed):
    dataset = glue.file_based_dataset(mrpc_records, 40, 4, True, True,
                                      seed=seed, dynamic_padding=True)
    assert dataset.element_spec["input_ids"].shape.as_list() == [4, None]
    return _batches(dataset.take(24))

  first = batches(3)
  indexes = [list(b["example_index"]) for b in first]
  assert indexes == [list(b["example_index"]) for b in batches(3)]
  assert indexes != [list(b["example_index"]) for b in batches(4)]
  assert all(b["input_ids"].shape[1] % 8 == 0 for b in first)
  # Windows of 8 batches, sorted by length, then the batches shuffled.
  shuffled = False
  for start in range(0, 24, 8):
    lengths = [b["input_mask"].sum(axis=1) for b in first[start:start + 8]]
    assert all(list(l) == sorted(l) for l in lengths)
    by_shortest = sorted(lengths, key=lambda l: (l[0], l[-1]))
    assert list(np.concatenate(by_shortest)) == sorted(np.concatenate(lengths))
    shuffled |= [l[0] for l in lengths] != sorted(l[0] for l in lengths)
  assert shuffled


def test_squad_training_batches_keep_the_answer_positions(fixtures_dir, small,
                                                          tmp_path):
  path = str(tmp_path / "train.tf_record")
  squad.write_train_features(
      str(fixtures_dir / "squad" / "train-v1.1-sample.json"),
      small["tokenizer"], path, 40, 8, 16, False)
  dataset = squad_data.squad_dataset(path, 40, 4, True, True, seed=1,
                                     dynamic_padding=True)
  for batch in _batches(dataset.take(30)):
    width = batch["input_ids"].shape[1]
    assert batch["end_positions"].max() < width
    lengths = batch["input_mask"].sum(axis=1)
    assert (batch["start_positions"] < lengths).all()


# ------------------------------------------------------------- one trace --


def test_prediction_traces_once_for_every_length(mrpc_records, small):
  model = classifier.model_fn(small["config"],
                              glue.get_processor("mrpc"))()
  traced_lengths = []

  def predict_fn(features):
    traced_lengths.append(features["input_ids"].shape[1])
    return classifier.run_with_loss(model, features, False)

  keys = ("logits", "per_example_loss")
  strategy = tf.distribute.get_strategy()
  fixed = inference.predict_all(
      strategy, predict_fn,
      glue.file_based_dataset(mrpc_records, 40, 4, False, False), keys,
      feature_keys=("label_ids",))
  traced_lengths.clear()
  dynamic = inference.predict_all(
      strategy, predict_fn,
      glue.file_based_dataset(mrpc_records, 40, 4, False, False,
                              dynamic_padding=True), keys,
      feature_keys=("label_ids",))
  assert traced_lengths == [None]  # five lengths, one trace
  assert sorted(dynamic) == sorted(fixed)
  np.testing.assert_array_equal(dynamic["label_ids"], fixed["label_ids"])
  for key in keys:
    np.testing.assert_allclose(dynamic[key], fixed[key], atol=1e-5, rtol=0)


def test_training_traces_once_for_every_length(mrpc_records, small, tmp_path):
  processor = glue.get_processor("mrpc")
  traced_lengths = []

  def loss_fn(model, features, training):
    traced_lengths.append(features["input_ids"].shape[1])
    return classifier.loss_fn(model, features, training)

  trainer = trainer_lib.Trainer(
      tf.distribute.get_strategy(),
      classifier.model_fn(small["config"], processor), loss_fn, str(tmp_path),
      optimizer_fn=lambda: optimization.create_optimizer(1e-4, 12, 1),
      iterations_per_loop=4, save_checkpoints_steps=12, log_steps=4)
  trainer.train(lambda context, start_step: glue.file_based_dataset(
      mrpc_records, 40, 4, True, True, seed=1, dynamic_padding=True), 12)
  assert int(trainer.global_step.numpy()) == 12
  assert traced_lengths == [None]


# ---------------------------------------------------------------- scripts --


def _read_tsv(path):
  with open(path) as f:
    return [[float(x) for x in line.rstrip("\n").split("\t")] for line in f]


def test_run_classifier_same_results_in_order(fixtures_dir, small, tmp_path):
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  _short_mrpc(fixtures_dir, data_dir / "dev.tsv", "dev.tsv", 30)
  _short_mrpc(fixtures_dir, data_dir / "test.tsv", "test.tsv", 37)
  outputs = {}
  for flag in ("--dynamic_padding", "--nodynamic_padding"):
    outputs[flag] = tmp_path / flag
    script_runner.run_main(
        "run_classifier", "--task_name=MRPC", "--data_dir=%s" % data_dir,
        "--vocab_file=%s" % (small["dir"] / "vocab.txt"),
        "--bert_config_file=%s" % (small["dir"] / "bert_config.json"),
        "--init_checkpoint=%s" % (small["dir"] / "bert_model.ckpt"),
        "--max_seq_length=40", "--seed=1", "--log_examples=0",
        "--output_dir=%s" % outputs[flag], "--do_eval", "--do_predict",
        "--eval_batch_size=4", "--predict_batch_size=4", flag)
  dynamic, fixed = (_read_tsv(outputs[f] / "test_results.tsv")
                    for f in ("--dynamic_padding", "--nodynamic_padding"))
  assert len(dynamic) == 37
  np.testing.assert_allclose(dynamic, fixed, atol=1e-5, rtol=0)
  dynamic, fixed = (metrics.read_eval_results(
      str(outputs[f] / "eval_results.txt"))
                    for f in ("--dynamic_padding", "--nodynamic_padding"))
  assert sorted(dynamic) == sorted(fixed)
  for key, value in fixed.items():
    assert dynamic[key] == pytest.approx(value, abs=1e-5), key


def test_extract_features_same_lines_in_order(small, tmp_path):
  words = ("the quick brown fox jumps over the lazy dog while the rain had "
           "only ceased with the gray streaks of morning").split()
  lines = [" ".join(words[:1 + (i * 7) % 18]) + (
      " ||| " + " ".join(words[i % 5:i % 5 + i % 4 + 1]) if i % 3 else "")
           for i in range(23)]
  input_file = tmp_path / "input.txt"
  input_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
  outputs = {}
  for flag in ("--dynamic_padding", "--nodynamic_padding"):
    outputs[flag] = tmp_path / (flag[2:] + ".jsonl")
    script_runner.run_main(
        "extract_features", "--input_file=%s" % input_file,
        "--output_file=%s" % outputs[flag],
        "--vocab_file=%s" % (small["dir"] / "vocab.txt"),
        "--bert_config_file=%s" % (small["dir"] / "bert_config.json"),
        "--init_checkpoint=%s" % (small["dir"] / "bert_model.ckpt"),
        "--max_seq_length=40", "--batch_size=3", "--layers=-1,0", flag)
  dynamic, fixed = ([json.loads(line) for line in outputs[f].read_text(
  ).splitlines()] for f in ("--dynamic_padding", "--nodynamic_padding"))
  assert [o["linex_index"] for o in dynamic] == list(range(23))
  for a, b in zip(dynamic, fixed):
    assert [f["token"] for f in a["features"]] == [
        f["token"] for f in b["features"]]
    for fa, fb in zip(a["features"], b["features"]):
      for la, lb in zip(fa["layers"], fb["layers"]):
        np.testing.assert_allclose(la["values"], lb["values"], atol=2e-6,
                                   rtol=0)


def test_squad_logits_equal_at_every_real_position(fixtures_dir, small,
                                                   tmp_path):
  # Every question of the v2.0 sample on the first 1 to 9 words of its
  # context: windows of 12 to 40 tokens.
  data = json.loads((fixtures_dir / "squad" / "dev-v2.0-sample.json")
                    .read_text())
  paragraphs = [{"context": " ".join(p["context"].split()[:1 + k * 3 % 9]),
                 "qas": [qa]}
                for article in data["data"] for p in article["paragraphs"]
                for k, qa in enumerate(p["qas"])]
  predict_file = tmp_path / "short.json"
  predict_file.write_text(json.dumps(
      {"version": "v2.0", "data": [{"title": "t", "paragraphs": paragraphs}]}))
  examples = squad.read_examples(str(predict_file), small["tokenizer"], False)
  writer = squad_data.FeatureWriter(str(tmp_path / "eval.tf_record"), False)
  squad.convert_examples(examples, small["tokenizer"], 40, 8, 8, False,
                         writer.process_feature)
  writer.close()
  model = BertSquad(small["config"])
  checkpoints.load_checkpoint(model, str(small["dir"] / "bert_model.ckpt"))
  outputs = {}
  for dynamic in (True, False):
    outputs[dynamic] = inference.predict_all(
        tf.distribute.get_strategy(),
        lambda features: model(features, training=False),
        squad_data.squad_dataset(writer.filename, 40, 4, False, False,
                                 dynamic_padding=dynamic),
        ("start_logits", "end_logits"), feature_keys=("unique_ids",),
        sequence_outputs=("start_logits", "end_logits"), seq_length=40)
  np.testing.assert_array_equal(outputs[True]["unique_ids"],
                                outputs[False]["unique_ids"])
  lengths = np.array([
      sum(tf.train.Example.FromString(record).features.feature[
          "input_mask"].int64_list.value)
      for record in tf.data.TFRecordDataset(
          writer.filename).as_numpy_iterator()])
  assert min(lengths) < 16 and max(lengths) == 40
  cut_off = 0
  for key in ("start_logits", "end_logits"):
    dynamic, fixed = outputs[True][key], outputs[False][key]
    for row, length in enumerate(lengths):
      np.testing.assert_allclose(dynamic[row, :length], fixed[row, :length],
                                 atol=1e-5, rtol=0)
      computed = np.isfinite(dynamic[row])
      assert computed[:length].all()
      cut_off += int((~computed).sum())
      assert (dynamic[row, ~computed] == inference.CUT_OFF_LOGIT).all()
  assert cut_off > 0


def test_run_pretraining_eval_same_metrics(fixtures_dir, tmp_path):
  # The eval records cut short after their last masked position (padding
  # from 8 + i % 33 tokens on), so that batches are cut.
  small = fixtures_dir / "original_bert_small"
  data = tmp_path / "short.tfrecord"
  with tf.io.TFRecordWriter(str(data)) as writer:
    for i, record in enumerate(tf.data.TFRecordDataset(
        str(small / "eval.tfrecord")).as_numpy_iterator()):
      example = tf.train.Example.FromString(record)
      feature = example.features.feature
      end = max(8 + i % 33,
                max(feature["masked_lm_positions"].int64_list.value) + 2)
      for key in ("input_ids", "input_mask", "segment_ids"):
        values = feature[key].int64_list.value
        values[:] = list(values[:end]) + [0] * (len(values) - end)
      writer.write(example.SerializeToString())
  results = {}
  for flag in ("--dynamic_padding", "--nodynamic_padding"):
    script_runner.run_main(
        "run_pretraining",
        "--bert_config_file=%s" % (small / "pretrained" / "bert_config.json"),
        "--init_checkpoint=%s" % (small / "pretrained" / "bert_model.ckpt"),
        "--input_file=%s" % data, "--output_dir=%s" % (tmp_path / flag),
        "--do_eval", "--eval_batch_size=4", "--max_eval_steps=20",
        "--max_seq_length=40", "--max_predictions_per_seq=6", flag)
    results[flag] = metrics.read_eval_results(
        str(tmp_path / flag / "eval_results.txt"))
  assert sorted(results["--dynamic_padding"]) == sorted(
      results["--nodynamic_padding"])
  for key, value in results["--nodynamic_padding"].items():
    assert results["--dynamic_padding"][key] == pytest.approx(
        value, abs=1e-5), key


@pytest.mark.slow
def test_mirrored_trains_and_predicts_as_one_device(fixtures_dir, small,
                                                    tmp_path):
  """Replicas train on batches of their own lengths; predictions unchanged."""
  root = pathlib.Path(__file__).resolve().parents[1]
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  for name, count in (("train.tsv", 32), ("dev.tsv", 24), ("test.tsv", 21)):
    _short_mrpc(fixtures_dir, data_dir / name, name, count)
  launcher = tmp_path / "two_cpus.py"
  launcher.write_text(TWO_CPUS)
  common = ["--task_name=MRPC", "--data_dir=%s" % data_dir,
            "--vocab_file=%s" % (small["dir"] / "vocab.txt"),
            "--bert_config_file=%s" % (small["dir"] / "bert_config.json"),
            "--max_seq_length=40", "--log_examples=0", "--do_eval",
            "--do_predict", "--eval_batch_size=4", "--predict_batch_size=4"]
  mirrored = tmp_path / "mirrored"
  result = subprocess.run(
      [sys.executable, str(launcher), str(root / "run_classifier.py")] +
      common + ["--output_dir=%s" % mirrored, "--do_train", "--seed=1",
                "--init_checkpoint=%s" % (small["dir"] / "bert_model.ckpt"),
                "--train_batch_size=8", "--num_train_epochs=2",
                "--distribution_strategy=mirrored"],
      env=dict(os.environ, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL="2"),
      capture_output=True, text=True, timeout=900, cwd=str(root))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "MirroredStrategy with devices" in result.stderr
  one_device = tmp_path / "one_device"
  script_runner.run_main(
      "run_classifier", *common, "--output_dir=%s" % one_device,
      "--init_checkpoint=%s" % (mirrored / "model.ckpt-8"),
      "--nodynamic_padding")
  np.testing.assert_allclose(_read_tsv(mirrored / "test_results.tsv"),
                             _read_tsv(one_device / "test_results.tsv"),
                             atol=1e-5, rtol=0)
  trained = metrics.read_eval_results(str(mirrored / "eval_results.txt"))
  results = metrics.read_eval_results(str(one_device / "eval_results.txt"))
  for key in ("eval_accuracy", "eval_f1", "eval_loss", "loss"):
    assert results[key] == pytest.approx(trained[key], abs=1e-5), key
