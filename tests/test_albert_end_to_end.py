"""ALBERT end to end through the scripts, as a user would run it.

A SentencePiece model is trained on a bundled corpus inside the test;
`create_pretraining_data.py` makes sentence-order + n-gram records with it;
`run_pretraining.py` trains a small ALBERT (2 layers sharing one group) with
LAMB and evaluates it; training longer lowers the evaluation losses.
"""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import record_format
from bert_tf.training import metrics
from sentencepiece_models import train_albert_spm

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(script, *args):
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run([sys.executable, str(ROOT / script)] + list(args),
                          env=env, capture_output=True, text=True,
                          timeout=600, cwd=str(ROOT))
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.mark.slow
def test_sentencepiece_sop_ngram_lamb_pretraining(fixtures_dir, tmp_path):
  # WikiText-2 paragraphs as documents of one sentence a line (the input
  # format of create_pretraining_data), headings left out.
  corpus = tmp_path / "corpus.txt"
  paragraphs = [
      line.strip() for line in
      (fixtures_dir / "corpora" / "wikitext2_valid.tokens").read_text(
          encoding="utf-8").splitlines()[:1500]
      if line.strip() and not line.strip().startswith("=")]
  corpus.write_text("\n\n".join(
      p.replace(" . ", " .\n") for p in paragraphs) + "\n", encoding="utf-8")
  spm_model = train_albert_spm(corpus, tmp_path / "30k-clean",
                               vocab_size=800)

  records = tmp_path / "albert.tfrecord"
  _run("create_pretraining_data.py", "--input_file=%s" % corpus,
       "--output_file=%s" % records, "--spm_model_file=%s" % spm_model,
       "--sentence_task=sop", "--masking=ngram", "--max_seq_length=128",
       "--max_predictions_per_seq=20", "--dupe_factor=1", "--random_seed=1")
  examples = record_format.read_records(str(records))
  assert len(examples) > 200
  labels = [e["next_sentence_labels"][0] for e in examples]
  # Label 1: swapped halves, and every chunk of one (long) sentence.
  assert 0.5 < sum(labels) / len(labels) < 0.8
  tokenizer = tokenization.FullTokenizer(None, True, spm_model_file=spm_model)
  assert all(e["input_ids"][0] == tokenizer.vocab["[CLS]"] for e in examples)

  config = tmp_path / "albert_config.json"
  config.write_text(json.dumps({
      "vocab_size": len(tokenizer.vocab), "embedding_size": 16,
      "hidden_size": 32, "num_hidden_layers": 2, "num_hidden_groups": 1,
      "inner_group_num": 1, "num_attention_heads": 2,
      "intermediate_size": 64, "hidden_act": "gelu",
      "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
      "max_position_embeddings": 128, "type_vocab_size": 2,
      "initializer_range": 0.02}))
  out = tmp_path / "pretrain"
  common = ["--albert_config_file=%s" % config, "--input_file=%s" % records,
            "--output_dir=%s" % out, "--max_seq_length=128",
            "--max_predictions_per_seq=20", "--optimizer=lamb",
            "--learning_rate=5e-3", "--num_warmup_steps=2",
            "--train_batch_size=16", "--eval_batch_size=16",
            "--max_eval_steps=8", "--save_checkpoints_steps=1000"]

  def train_and_evaluate(steps):
    _run("run_pretraining.py", "--do_train", "--do_eval",
         "--num_train_steps=%d" % steps, *common)
    return metrics.read_eval_results(str(out / "eval_results.txt"))

  first = train_and_evaluate(2)
  assert first["global_step"] == 2
  # The same command with more steps resumes from model.ckpt-2 and trains on
  # to step 60 (its schedule decays over 60 steps).
  second = train_and_evaluate(60)
  print("eval after 2 steps:", first, "\neval after 60 steps:", second)
  assert second["global_step"] == 60
  names = dict(tf.train.list_variables(str(out / "model.ckpt-60")))
  assert ("bert/encoder/transformer/group_0/inner_group_0/attention_1/self/"
          "query/kernel/adam_m") in names
  assert "bert/encoder/embedding_hidden_mapping_in/kernel" in names
  assert not any("group_1" in n for n in names)
  for key in ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy",
              "next_sentence_loss", "loss"):
    assert math.isfinite(second[key]), key
  assert second["masked_lm_loss"] < first["masked_lm_loss"] - 0.5
  assert second["masked_lm_loss"] < math.log(len(tokenizer.vocab))
  assert second["masked_lm_accuracy"] > first["masked_lm_accuracy"]

  # RoBERTa-style dynamic masking takes its ids from the SentencePiece model.
  dynamic = tmp_path / "dynamic"
  _run("run_pretraining.py", "--do_train", "--num_train_steps=2",
       "--dynamic_masking", "--spm_model_file=%s" % spm_model,
       *(common[:2] + ["--output_dir=%s" % dynamic] + common[3:]))
  assert (dynamic / "model.ckpt-2.index").exists()
