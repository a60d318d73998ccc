"""run_squad.py end to end: the small original BERT on the SQuAD samples."""

import json
import math
import os
import re
import subprocess
import sys

import pytest

from bert_tf.data import record_format
from bert_tf.data import squad as squad_data
from bert_tf.tasks import squad_metrics
from test_run_classifier import eval_scalars

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V2_KEYS = ["exact", "f1", "total", "HasAns_exact", "HasAns_f1",
           "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total",
           "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]
NUM_STEPS = 7  # int(14 / 8 * 4)


def run_squad(*args):
  """Runs the script; returns (returncode, stderr)."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.run(
      [sys.executable, os.path.join(ROOT, "run_squad.py")] + list(args),
      capture_output=True, text=True, env=env, timeout=600)
  return process.returncode, process.stderr


def _load(path):
  with open(path) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def setup(fixtures_dir, tmp_path_factory):
  """Trains on the v2.0 sample and predicts it once for the module."""
  root = tmp_path_factory.mktemp("squad")
  pretrained = fixtures_dir / "original_bert_small" / "pretrained"
  v2_file = fixtures_dir / "squad" / "dev-v2.0-sample.json"
  common = ["--vocab_file=%s" % (pretrained / "vocab.txt"),
            "--bert_config_file=%s" % (pretrained / "bert_config.json"),
            "--max_seq_length=40", "--max_query_length=16",
            "--doc_stride=8", "--seed=1"]
  output_dir = root / "v2"
  code, log = run_squad(
      *common, "--init_checkpoint=%s" % (pretrained / "bert_model.ckpt"),
      "--output_dir=%s" % output_dir, "--train_file=%s" % v2_file,
      "--predict_file=%s" % v2_file, "--version_2_with_negative",
      "--do_train", "--do_predict", "--train_batch_size=8",
      "--num_train_epochs=4", "--learning_rate=1e-3", "--log_steps=1")
  assert code == 0, log[-3000:]
  return dict(root=root, common=common, output_dir=output_dir, log=log,
              v2_file=v2_file, pretrained=pretrained,
              v1_file=fixtures_dir / "squad" / "dev-v1.1-sample.json")


def test_training_loss_falls(setup):
  losses = [float(x) for x in re.findall(r"step \d+/7  loss = ([0-9.]+)",
                                         setup["log"])]
  assert len(losses) == NUM_STEPS
  assert losses[-1] < 0.7 * losses[0]
  assert "Num orig examples = 14" in setup["log"]
  assert os.path.exists(setup["output_dir"] / ("model.ckpt-%d.index" %
                                               NUM_STEPS))


def test_v2_outputs_are_complete_and_consistent(setup):
  out = setup["output_dir"]
  dataset = squad_data.read_squad_data(str(setup["v2_file"]))
  qids = [qa["id"] for article in dataset for p in article["paragraphs"]
          for qa in p["qas"]]
  predictions = _load(out / "predictions.json")
  nbest = _load(out / "nbest_predictions.json")
  null_odds = _load(out / "null_odds.json")
  assert list(predictions) == qids and list(nbest) == qids
  assert list(null_odds) == qids
  for qid in qids:
    entries = nbest[qid]
    assert 1 <= len(entries) <= 20 + 1
    assert sorted(entries[0]) == ["end_logit", "probability", "start_logit",
                                  "text"]
    assert "" in [e["text"] for e in entries]
    assert math.isclose(sum(e["probability"] for e in entries), 1.0,
                        rel_tol=1e-9)
    # Entries come by decreasing score, except the null answer appended last
    # when it was not among the best.
    scores = [e["start_logit"] + e["end_logit"] for e in entries
              if e["text"]]
    assert scores == sorted(scores, reverse=True)
    best = next(e for e in entries if e["text"])
    null_score = null_odds[qid] + best["start_logit"] + best["end_logit"]
    null_entry = next(e for e in entries if not e["text"])
    assert null_score == pytest.approx(null_entry["start_logit"] +
                                       null_entry["end_logit"], abs=1e-9)
    assert predictions[qid] == ("" if null_odds[qid] > 0.0 else best["text"])
  results = _load(out / "squad_eval_results.json")
  assert list(results) == V2_KEYS
  assert results == squad_metrics.evaluate_v2(dataset, predictions, null_odds)
  assert (results["total"], results["HasAns_total"],
          results["NoAns_total"]) == (14, 8, 6)
  assert "best_f1_thresh = " in setup["log"]
  # The results as TensorBoard scalars under output_dir/eval.
  scalars = eval_scalars(out)
  assert sorted(scalars) == sorted(V2_KEYS)
  for tag, (step, value) in scalars.items():
    assert step == NUM_STEPS
    assert value == pytest.approx(results[tag], rel=1e-6), tag
  # The features of the first 20 examples are logged (all 14 here), in
  # training and in prediction.
  assert setup["log"].count("*** Example ***") == 2 * _num_features(
      setup["output_dir"] / "eval.tf_record")


def _num_features(record_file):
  return sum(1 for _ in record_format.read_records(str(record_file)))


def test_bad_predict_file_fails_before_training(setup, tmp_path):
  """A predict file missing a field is named before anything is trained."""
  data = _load(setup["v2_file"])
  del data["data"][0]["paragraphs"][0]["qas"][0]["question"]
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps(data))
  out = tmp_path / "out"
  code, log = run_squad(
      *setup["common"], "--output_dir=%s" % out,
      "--train_file=%s" % setup["v2_file"], "--predict_file=%s" % bad,
      "--version_2_with_negative", "--do_train", "--do_predict")
  assert code != 0
  assert "missing required field 'question'" in log and str(bad) in log
  assert "Running training" not in log
  assert not out.exists()  # No empty output directory left.


def test_v1_predict_from_init_checkpoint(setup):
  """--do_predict alone in a new directory uses --init_checkpoint."""
  out = setup["root"] / "v1"
  code, log = run_squad(
      *setup["common"], "--output_dir=%s" % out,
      "--predict_file=%s" % setup["v1_file"], "--do_predict",
      "--n_best_size=5", "--log_examples=0", "--init_checkpoint=%s" % (
          setup["output_dir"] / ("model.ckpt-%d" % NUM_STEPS)))
  assert code == 0, log[-3000:]
  assert "*** Example ***" not in log
  predictions = _load(out / "predictions.json")
  nbest = _load(out / "nbest_predictions.json")
  assert len(predictions) == 5
  assert all(1 <= len(v) <= 5 for v in nbest.values())
  assert all(predictions[q] == nbest[q][0]["text"] for q in predictions)
  assert not (out / "null_odds.json").exists()
  results = _load(out / "squad_eval_results.json")
  assert list(results) == ["exact_match", "f1"]
  assert results == squad_metrics.evaluate_v1(
      squad_data.read_squad_data(str(setup["v1_file"])), predictions)


@pytest.mark.slow
def test_predict_without_training_prefers_output_dir(setup):
  """--do_predict alone in the training directory uses its checkpoint."""
  out = setup["output_dir"]
  names = ("predictions.json", "nbest_predictions.json", "null_odds.json")
  trained = {name: (out / name).read_text() for name in names}
  code, log = run_squad(
      *setup["common"], "--output_dir=%s" % out,
      "--predict_file=%s" % setup["v2_file"], "--do_predict",
      "--version_2_with_negative",
      "--init_checkpoint=%s" % (setup["pretrained"] / "bert_model.ckpt"))
  assert code == 0, log[-3000:]
  assert "Resumed from %s" % (out / ("model.ckpt-%d" % NUM_STEPS)) in log
  for name in names:
    assert (out / name).read_text() == trained[name], name


@pytest.mark.slow
def test_v1_training(setup, fixtures_dir):
  out = setup["root"] / "v1_train"
  code, log = run_squad(
      *setup["common"], "--output_dir=%s" % out,
      "--train_file=%s" % (fixtures_dir / "squad" / "train-v1.1-sample.json"),
      "--predict_file=%s" % setup["v1_file"], "--do_train", "--do_predict",
      "--train_batch_size=4", "--num_train_epochs=4", "--learning_rate=1e-3",
      "--log_steps=1", "--init_checkpoint=%s" % (
          setup["pretrained"] / "bert_model.ckpt"))
  assert code == 0, log[-3000:]
  losses = [float(x) for x in re.findall(r"step \d+/10  loss = ([0-9.]+)",
                                         log)]
  assert len(losses) == 10 and losses[-1] < losses[0]
  assert list(_load(out / "squad_eval_results.json")) == ["exact_match", "f1"]


@pytest.mark.slow
def test_missing_predict_file_flag(setup):
  code, log = run_squad(*setup["common"], "--output_dir=%s" % (
      setup["root"] / "bad"), "--do_predict")
  assert code != 0
  assert ("If `do_predict` is True, then `predict_file` must be specified."
          in log)
