"""run_classifier.py end to end: fine-tuning the small original BERT on MRPC.

The training set is 64 real MRPC pairs, also used as the dev set, so that a
model that learned them scores far below the label entropy (~0.67), which a
model predicting the label prior cannot.
"""

import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401 (the export's tokenizer ops)

from bert_tf.modeling import BertConfig
from bert_tf.tasks import classifier
from bert_tf.tasks import classifier_metrics
from bert_tf.training import metrics
from bert_tf.training import optimization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_EXAMPLES = 64
NUM_STEPS = 160  # int(64 / 8 * 20)


def run_classifier(*args):
  """Runs the script; returns (returncode, stderr)."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.run(
      [sys.executable, os.path.join(ROOT, "run_classifier.py")] + list(args),
      capture_output=True, text=True, env=env, timeout=600)
  return process.returncode, process.stderr


@pytest.fixture(scope="module")
def setup(fixtures_dir, tmp_path_factory):
  """Writes the data and runs train+eval+predict once for the module."""
  root = tmp_path_factory.mktemp("mrpc")
  data_dir = root / "data"
  data_dir.mkdir()
  mrpc = fixtures_dir / "glue" / "MRPC"
  train_lines = (mrpc / "train.tsv").read_text(
      encoding="utf-8").splitlines(True)[:NUM_EXAMPLES + 1]
  (data_dir / "train.tsv").write_text("".join(train_lines), encoding="utf-8")
  (data_dir / "dev.tsv").write_text("".join(train_lines), encoding="utf-8")
  test_lines = (mrpc / "test.tsv").read_text(
      encoding="utf-8").splitlines(True)[:21]
  (data_dir / "test.tsv").write_text("".join(test_lines), encoding="utf-8")
  pretrained = fixtures_dir / "original_bert_small" / "pretrained"
  common = ["--task_name=MRPC", "--data_dir=%s" % data_dir,
            "--vocab_file=%s" % (pretrained / "vocab.txt"),
            "--bert_config_file=%s" % (pretrained / "bert_config.json"),
            "--max_seq_length=40", "--seed=1"]
  output_dir = root / "out"
  code, log = run_classifier(
      *common, "--init_checkpoint=%s" % (pretrained / "bert_model.ckpt"),
      "--output_dir=%s" % output_dir, "--do_train", "--do_eval",
      "--do_predict", "--train_batch_size=8", "--num_train_epochs=20",
      "--learning_rate=1e-3", "--log_steps=40")
  assert code == 0, log[-3000:]
  labels = [int(line.split("\t")[0]) for line in train_lines[1:]]
  return dict(root=root, common=common, output_dir=output_dir, log=log,
              labels=labels, pretrained=pretrained)


def test_fine_tuning_learns_the_training_pairs(setup):
  results = metrics.read_eval_results(
      str(setup["output_dir"] / "eval_results.txt"))
  assert sorted(results) == ["eval_accuracy", "eval_f1", "eval_loss",
                             "global_step", "loss"]
  assert results["global_step"] == NUM_STEPS
  p = np.mean(setup["labels"])
  label_entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
  assert label_entropy > 0.6
  assert results["eval_loss"] < 0.3 < label_entropy
  assert results["eval_accuracy"] >= 0.9
  # 64 examples in 8 full batches: the Estimator's loss equals eval_loss.
  assert results["loss"] == pytest.approx(results["eval_loss"], rel=1e-5)
  predictions_correct = results["eval_accuracy"] * NUM_EXAMPLES
  assert predictions_correct == pytest.approx(round(predictions_correct))
  # The logged training loss falls.
  losses = [float(x) for x in re.findall(r"step \d+/160  loss = ([0-9.]+)",
                                         setup["log"])]
  assert len(losses) == 4 and losses[-1] < losses[0]


def test_checkpoint_has_the_original_names(setup):
  reader = tf.train.load_checkpoint(
      str(setup["output_dir"] / ("model.ckpt-%d" % NUM_STEPS)))
  shapes = reader.get_variable_to_shape_map()
  assert shapes["output_weights"] == [2, 48]
  assert shapes["output_bias"] == [2]
  assert shapes["output_weights/adam_m"] == [2, 48]
  assert "bert/pooler/dense/kernel/adam_v" in shapes
  assert int(reader.get_tensor("global_step")) == NUM_STEPS


def _read_tsv(path):
  with open(path) as f:
    return [[float(x) for x in line.rstrip("\n").split("\t")] for line in f]


def test_test_results_one_line_of_probabilities_per_example(setup):
  rows = _read_tsv(setup["output_dir"] / "test_results.tsv")
  assert len(rows) == 20
  assert all(len(row) == 2 for row in rows)
  assert np.allclose(np.sum(rows, axis=1), 1.0, atol=1e-5)


def eval_scalars(output_dir):
  """The scalars under output_dir/eval: {tag: (step, value)}."""
  scalars = {}
  for path in tf.io.gfile.glob(os.path.join(str(output_dir), "eval",
                                            "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        scalars[value.tag] = (event.step,
                              float(tf.make_ndarray(value.tensor)))
  return scalars


def test_eval_metrics_reach_tensorboard(setup):
  results = metrics.read_eval_results(
      str(setup["output_dir"] / "eval_results.txt"))
  scalars = eval_scalars(setup["output_dir"])
  assert sorted(scalars) == sorted(k for k in results if k != "global_step")
  for tag, (step, value) in scalars.items():
    assert step == NUM_STEPS
    assert value == pytest.approx(results[tag], rel=1e-6), tag


def test_bad_dev_line_fails_before_training(setup, tmp_path):
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  source = setup["root"] / "data"
  (data_dir / "train.tsv").write_text((source / "train.tsv").read_text())
  lines = (source / "dev.tsv").read_text().splitlines(True)
  lines[3] = "x" + lines[3][1:]  # label "x" on the third pair
  (data_dir / "dev.tsv").write_text("".join(lines))
  output_dir = tmp_path / "out"
  common = [a for a in setup["common"] if not a.startswith("--data_dir")]
  code, log = run_classifier(
      *common, "--data_dir=%s" % data_dir, "--output_dir=%s" % output_dir,
      "--do_train", "--do_eval", "--num_train_epochs=20")
  assert code != 0
  assert "Example dev-3 has label 'x', expected one of ['0', '1']" in log
  assert "Running training" not in log
  assert not output_dir.exists()  # no empty output directory left behind


def test_eval_without_training_uses_init_checkpoint(setup):
  """A fine-tuned checkpoint (with output_weights) evaluated in a new dir."""
  output_dir = setup["root"] / "from_init"
  code, log = run_classifier(
      *setup["common"], "--output_dir=%s" % output_dir, "--do_eval",
      "--do_predict", "--init_checkpoint=%s" % (
          setup["output_dir"] / ("model.ckpt-%d" % NUM_STEPS)),
      "--export_dir=%s" % (output_dir / "export"))
  assert code == 0, log[-3000:]
  trained = metrics.read_eval_results(
      str(setup["output_dir"] / "eval_results.txt"))
  results = metrics.read_eval_results(str(output_dir / "eval_results.txt"))
  assert results.pop("global_step") == 0  # As the Estimator from init.
  for key, value in results.items():
    assert value == pytest.approx(trained[key], rel=1e-5), key
  np.testing.assert_allclose(_read_tsv(output_dir / "test_results.tsv"),
                             _read_tsv(setup["output_dir"] /
                                       "test_results.tsv"), atol=1e-6)
  # The export serves the test pairs as raw text with the same probabilities.
  test_rows = [line.rstrip("\n").split("\t") for line in (
      setup["root"] / "data" / "test.tsv").read_text("utf-8").splitlines(
          True)[1:]]
  served = tf.saved_model.load(str(output_dir / "export")).signatures[
      "serve_text"](text_a=tf.constant([r[3] for r in test_rows]),
                    text_b=tf.constant([r[4] for r in test_rows]))
  np.testing.assert_allclose(served["probabilities"],
                             _read_tsv(output_dir / "test_results.tsv"),
                             atol=1e-5)


@pytest.mark.slow
def test_eval_without_training_prefers_output_dir(setup):
  """The latest checkpoint of output_dir wins over --init_checkpoint."""
  eval_file = setup["output_dir"] / "eval_results.txt"
  trained = eval_file.read_text()
  eval_file.unlink()
  code, log = run_classifier(
      *setup["common"], "--output_dir=%s" % setup["output_dir"], "--do_eval",
      "--init_checkpoint=%s" % (setup["pretrained"] / "bert_model.ckpt"))
  assert code == 0, log[-3000:]
  assert "Resumed from %s" % (setup["output_dir"] / ("model.ckpt-%d" %
                                                     NUM_STEPS)) in log
  results = metrics.read_eval_results(str(eval_file))
  expected = {k: float(v) for k, v in (
      line.split(" = ") for line in trained.splitlines())}
  assert results["global_step"] == NUM_STEPS
  for key, value in results.items():
    assert value == pytest.approx(expected[key], rel=1e-5), key


def test_flag_checks(fixtures_dir):
  config = BertConfig.from_json_file(str(
      fixtures_dir / "original_bert_small" / "pretrained" /
      "bert_config.json"))
  config.check_max_seq_length(40)
  with pytest.raises(ValueError) as e:
    config.check_max_seq_length(128)
  assert str(e.value) == ("Cannot use sequence length 128 because the BERT "
                          "model was only trained up to sequence length 40")
  config.hierarchical_position_alpha = 0.4
  config.check_max_seq_length(1600)
  assert optimization.num_train_steps(3668, 32, 3.0, 0.1) == (343, 34)
  with pytest.raises(ValueError, match="10 training examples with "
                     "--train_batch_size=32 and --num_train_epochs=1.0 give "
                     "no training step"):
    optimization.num_train_steps(10, 32, 1.0, 0.1)


def test_eval_results_hand_computed():
  """Padding (is_real_example 0) counts in `loss` only, as the Estimator."""
  outputs = {
      "per_example_loss": np.array([0.1, 0.3, 0.5, 0.7, 0.9], np.float32),
      "label_ids": np.array([1, 0, 1, 1, 0]),
      "is_real_example": np.array([1, 1, 1, 1, 0]),
      "logits": np.array([[0, 1], [1, 0], [1, 0], [0, 1], [1, 0]],
                         np.float32),
  }
  mrpc = classifier.compute_eval_results(outputs, "mrpc", False, 2, 12)
  assert mrpc == {"eval_accuracy": np.float32(0.75),
                  "eval_loss": np.float32(0.4),
                  "loss": pytest.approx(np.float32((0.2 + 0.6 + 0.9) / 3)),
                  "eval_f1": np.float32(0.8), "global_step": 12}
  assert isinstance(mrpc["eval_accuracy"], np.float32)
  assert isinstance(mrpc["global_step"], np.int64)
  cola = classifier.compute_eval_results(outputs, "cola", False, 2, 0)
  assert cola["eval_mcc"] == np.float32(2 / math.sqrt(12))
  assert "eval_f1" not in cola


def test_metrics_match_sklearn_and_scipy():
  sklearn_metrics = pytest.importorskip("sklearn.metrics")
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.RandomState(0)
  labels = rng.randint(0, 2, 200)
  predictions = np.where(rng.rand(200) < 0.7, labels, 1 - labels)
  assert classifier_metrics.matthews_corrcoef(predictions, labels) == (
      pytest.approx(sklearn_metrics.matthews_corrcoef(labels, predictions)))
  assert classifier_metrics.f1_score(predictions, labels) == pytest.approx(
      sklearn_metrics.f1_score(labels, predictions))
  three = rng.randint(0, 3, 200)
  assert classifier_metrics.matthews_corrcoef(three, labels) == (
      pytest.approx(sklearn_metrics.matthews_corrcoef(labels, three)))
  x = np.round(rng.rand(100) * 5, 1)  # With ties.
  y = x + rng.randn(100)
  assert classifier_metrics.pearson_corrcoef(x, y) == pytest.approx(
      stats.pearsonr(x, y)[0])
  assert classifier_metrics.spearman_corrcoef(x, y) == pytest.approx(
      stats.spearmanr(x, y)[0])
  assert classifier_metrics.rank_average([10, 20, 10, 30]).tolist() == [
      1.5, 3.0, 1.5, 4.0]
  assert classifier_metrics.matthews_corrcoef([1, 1], [1, 1]) == 0.0


@pytest.mark.slow
def test_eval_without_checkpoint_is_an_error(setup):
  code, log = run_classifier(*setup["common"],
                             "--output_dir=%s" % (setup["root"] / "none"),
                             "--do_eval")
  assert code != 0
  assert ("Without --do_train the model needs a checkpoint: %s has none and "
          "--init_checkpoint is not set" % (setup["root"] / "none")) in log


@pytest.mark.slow
def test_sts_b_regression(fixtures_dir, tmp_path):
  """STS-B layout (scores made from MRPC labels): regression outputs."""
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  header = ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\t"
            "sentence1\tsentence2\tscore\n")
  rows = (fixtures_dir / "glue" / "MRPC" / "train.tsv").read_text(
      encoding="utf-8").splitlines()[1:33]
  lines = ["%d\tg\tf\ty\to\ts\ts\t%s\t%s\t%.1f\n" % (
      i, r.split("\t")[3], r.split("\t")[4], 4.0 * int(r.split("\t")[0]) +
      0.5 * (i % 3)) for i, r in enumerate(rows)]
  (data_dir / "train.tsv").write_text(header + "".join(lines),
                                      encoding="utf-8")
  (data_dir / "dev.tsv").write_text(header + "".join(lines), encoding="utf-8")
  (data_dir / "test.tsv").write_text(
      header.replace("\tscore", "") + "".join(
          l.rsplit("\t", 1)[0] + "\n" for l in lines[:5]), encoding="utf-8")
  pretrained = fixtures_dir / "original_bert_small" / "pretrained"
  code, log = run_classifier(
      "--task_name=STS-B", "--data_dir=%s" % data_dir,
      "--vocab_file=%s" % (pretrained / "vocab.txt"),
      "--bert_config_file=%s" % (pretrained / "bert_config.json"),
      "--init_checkpoint=%s" % (pretrained / "bert_model.ckpt"),
      "--output_dir=%s" % (tmp_path / "out"), "--max_seq_length=40",
      "--do_train", "--do_eval", "--do_predict", "--train_batch_size=8",
      "--num_train_epochs=20", "--learning_rate=1e-3", "--seed=1")
  assert code == 0, log[-3000:]
  results = metrics.read_eval_results(str(tmp_path / "out" /
                                          "eval_results.txt"))
  assert sorted(results) == ["eval_loss", "eval_pearson", "eval_spearman",
                             "global_step", "loss"]
  assert results["global_step"] == 80
  assert results["eval_pearson"] > 0.8 and results["eval_spearman"] > 0.7
  rows = _read_tsv(tmp_path / "out" / "test_results.tsv")
  assert len(rows) == 5 and all(len(row) == 1 for row in rows)
  reader = tf.train.load_checkpoint(str(tmp_path / "out" / "model.ckpt-80"))
  assert reader.get_variable_to_shape_map()["output_weights"] == [1, 48]
