"""run_squad.py --spm_model_file end to end: a tiny ALBERT on the SQuAD samples.

A SentencePiece model is trained in the test on the samples' texts; a tiny
ALBERT (2 layers sharing one group, factorized embeddings) is fine-tuned from
scratch on train-v1.1-sample.json with ALBERT's features, and predicts it
(v1.1) and dev-v2.0-sample.json (v2.0, null odds): the original output files
and the official metrics of what was written.
"""

import json
import re

import pytest
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import record_format
from bert_tf.data import squad as squad_data
from bert_tf.tasks import squad_metrics
from sentencepiece_models import train_albert_spm
from sentencepiece_models import write_squad_texts
from test_run_squad import _load
from test_run_squad import run_squad

NUM_STEPS = 800  # int(10 / 4 * 320)


def _qids(path):
  return [qa["id"] for article in squad_data.read_squad_data(str(path))
          for p in article["paragraphs"] for qa in p["qas"]]


def tiny_albert_flags(fixtures_dir, root):
  """A SentencePiece model and a tiny ALBERT config for the SQuAD samples.

  Args:
    fixtures_dir: the fixtures directory (pathlib.Path).
    root: a directory for the model, its texts and the config.

  Returns:
    run_squad.py's flags for them and the window settings (list of str).
  """
  spm_model = train_albert_spm(
      write_squad_texts(fixtures_dir, root / "texts.txt"), root / "spm",
      vocab_size=500)
  vocab_size = len(tokenization.FullTokenizer(
      None, True, spm_model_file=spm_model).vocab)
  config = root / "albert_config.json"
  config.write_text(json.dumps({
      "vocab_size": vocab_size, "embedding_size": 16, "hidden_size": 32,
      "num_hidden_layers": 2, "num_hidden_groups": 1, "inner_group_num": 1,
      "num_attention_heads": 2, "intermediate_size": 64,
      "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
      "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 256,
      "type_vocab_size": 2, "initializer_range": 0.02}))
  return ["--spm_model_file=%s" % spm_model,
          "--albert_config_file=%s" % config, "--max_seq_length=256",
          "--max_query_length=24", "--doc_stride=128", "--seed=1"]


@pytest.fixture(scope="module")
def setup(fixtures_dir, tmp_path_factory):
  """Trains a tiny ALBERT on the v1.1 training sample and predicts it."""
  root = tmp_path_factory.mktemp("albert_squad")
  train_file = fixtures_dir / "squad" / "train-v1.1-sample.json"
  common = tiny_albert_flags(fixtures_dir, root)
  output_dir = root / "v1"
  code, log = run_squad(
      *common, "--output_dir=%s" % output_dir,
      "--train_file=%s" % train_file, "--predict_file=%s" % train_file,
      "--do_train", "--do_predict", "--train_batch_size=4",
      "--num_train_epochs=320", "--learning_rate=2e-3", "--log_steps=1")
  assert code == 0, log[-3000:]
  return dict(root=root, common=common, output_dir=output_dir, log=log,
              train_file=train_file,
              v2_file=fixtures_dir / "squad" / "dev-v2.0-sample.json")


@pytest.mark.slow
def test_training_loss_falls(setup):
  losses = [float(x) for x in re.findall(
      r"step \d+/%d  loss = ([0-9.]+)" % NUM_STEPS, setup["log"])]
  assert len(losses) == NUM_STEPS
  assert sum(losses[-5:]) < 0.7 * sum(losses[:5])
  assert "Num orig examples = 10" in setup["log"]
  out = setup["output_dir"]
  assert (out / ("model.ckpt-%d.index" % NUM_STEPS)).exists()
  names = dict(tf.train.list_variables(str(out / ("model.ckpt-%d" %
                                                  NUM_STEPS))))
  assert "cls/squad/output_weights" in names
  assert "bert/encoder/embedding_hidden_mapping_in/kernel" in names
  # ALBERT's training records: p_mask, and windows without the answer.
  records = record_format.read_records(str(out / "train.tf_record"))
  assert all("p_mask" in r for r in records)
  assert {r["is_impossible"][0] for r in records} == {0, 1}


@pytest.mark.slow
def test_v1_outputs_and_official_metrics(setup):
  out = setup["output_dir"]
  qids = _qids(setup["train_file"])
  predictions = _load(out / "predictions.json")
  nbest = _load(out / "nbest_predictions.json")
  assert list(predictions) == qids and list(nbest) == qids
  assert not (out / "null_odds.json").exists()
  paragraphs = [p["context"] for article in squad_data.read_squad_data(
      str(setup["train_file"])) for p in article["paragraphs"]]
  for qid in qids:
    entries = nbest[qid]
    assert 1 <= len(entries) <= 20
    assert entries[0]["text"] == predictions[qid]
    assert abs(sum(e["probability"] for e in entries) - 1.0) < 1e-6
    # Answers are cut out of the original context.
    assert all(any(e["text"] in p for p in paragraphs) for e in entries)
  results = _load(out / "squad_eval_results.json")
  dataset = squad_data.read_squad_data(str(setup["train_file"]))
  assert results == pytest.approx(
      squad_metrics.evaluate_v1(dataset, predictions))
  print("ALBERT SQuAD v1.1 sample (trained on it):", results)
  # The tiny model fits the questions it was trained on (90.0 when written).
  assert results["f1"] > 70.0


@pytest.mark.slow
def test_v2_prediction_writes_null_odds(setup):
  out = setup["root"] / "v2"
  code, log = run_squad(
      *setup["common"], "--output_dir=%s" % out,
      "--init_checkpoint=%s" % (setup["output_dir"] /
                                ("model.ckpt-%d" % NUM_STEPS)),
      "--predict_file=%s" % setup["v2_file"], "--do_predict",
      "--version_2_with_negative", "--null_score_diff_threshold=0.0")
  assert code == 0, log[-3000:]
  qids = _qids(setup["v2_file"])
  predictions = _load(out / "predictions.json")
  null_odds = _load(out / "null_odds.json")
  assert list(predictions) == qids and list(null_odds) == qids
  for qid in qids:
    assert (predictions[qid] == "") == (null_odds[qid] > 0.0)
  results = _load(out / "squad_eval_results.json")
  dataset = squad_data.read_squad_data(str(setup["v2_file"]))
  assert results == pytest.approx(
      squad_metrics.evaluate_v2(dataset, predictions, null_odds))
  assert results["total"] == 14


def test_spm_or_vocab_is_required(fixtures_dir, tmp_path):
  config = fixtures_dir / "original_bert_small" / "pretrained" / (
      "bert_config.json")
  code, log = run_squad("--bert_config_file=%s" % config,
                        "--output_dir=%s" % tmp_path, "--do_predict",
                        "--predict_file=x")
  assert code != 0
  assert "--vocab_file (WordPiece) or --spm_model_file" in log
