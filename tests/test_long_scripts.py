"""run_pretraining.py and run_classifier.py at twice the position table.

The small original BERT (40 learned positions, dropout off) with
`hierarchical_position_alpha` trains at `--max_seq_length=80` from its
checkpoint: with query-chunked attention (`attention_chunk_size` 16, whose
gradient recomputes each chunk) the losses, weights and predictions are those
of full attention to float round-off.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from bert_tf.data import record_format
from bert_tf.training import metrics
import script_runner

MAX_SEQ_LENGTH = 80  # twice max_position_embeddings (40)


def write_config(fixtures_dir, path, chunk_size):
  """The small original config + hierarchical positions and `chunk_size`."""
  config = json.loads(
      (fixtures_dir / "original_bert_small" / "bert_config.json").read_text())
  assert config["max_position_embeddings"] * 2 == MAX_SEQ_LENGTH
  config.update(hierarchical_position_alpha=0.4,
                attention_chunk_size=chunk_size)
  path.write_text(json.dumps(config))
  return path


def test_learned_positions_refuse_twice_the_table(fixtures_dir, tmp_path):
  small = fixtures_dir / "original_bert_small"
  for script, data_flags in (
      ("run_pretraining", ["--input_file=x"]),
      ("run_classifier", ["--task_name=MRPC", "--data_dir=x",
                          "--vocab_file=%s" % (small / "vocab.txt")])):
    with pytest.raises(ValueError, match="Cannot use sequence length 80 "
                       "because the BERT model was only trained up to "
                       "sequence length 40"):
      script_runner.run_main(
          script, "--bert_config_file=%s" % (small / "bert_config.json"),
          "--output_dir=%s" % (tmp_path / script), "--do_train",
          "--max_seq_length=%d" % MAX_SEQ_LENGTH, *data_flags)


@pytest.mark.slow
def test_run_pretraining_at_twice_the_table_chunked_equals_full(
    fixtures_dir, tmp_path):
  small = fixtures_dir / "original_bert_small"
  data = tmp_path / "data.tfrecord"
  script_runner.run_main(
      "create_pretraining_data",
      "--input_file=%s" % (fixtures_dir / "pretraining_data" /
                           "sample_text.txt"),
      "--output_file=%s" % data, "--vocab_file=%s" % (small / "vocab.txt"),
      "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--max_predictions_per_seq=12",
      "--dupe_factor=1", "--random_seed=3")
  lengths = [int(np.sum(features["input_mask"])) for features in
             record_format.read_records(str(data))]
  # Most instances use positions past the table (target length 80).
  assert np.mean(np.array(lengths) > 40) > 0.5 and max(lengths) == 80

  weights = []
  for chunk_size in (None, 16):
    out = tmp_path / ("out_%s" % chunk_size)
    script_runner.run_main(
        "run_pretraining",
        "--bert_config_file=%s" % write_config(
            fixtures_dir, tmp_path / ("config_%s.json" % chunk_size),
            chunk_size),
        "--input_file=%s" % data, "--output_dir=%s" % out,
        "--init_checkpoint=%s" % (small / "bert_model.ckpt"),
        "--do_train", "--do_eval", "--train_batch_size=4",
        "--eval_batch_size=4", "--max_seq_length=%d" % MAX_SEQ_LENGTH,
        "--max_predictions_per_seq=12", "--learning_rate=1e-3",
        "--num_train_steps=3", "--num_warmup_steps=1", "--max_eval_steps=3",
        "--seed=1")
    weights.append((metrics.read_eval_results(str(out / "eval_results.txt")),
                    tf.train.load_checkpoint(str(out / "model.ckpt-3"))))
  (full_results, full), (chunked_results, chunked) = weights
  assert chunked_results.keys() == full_results.keys()
  for name, value in full_results.items():
    assert chunked_results[name] == pytest.approx(value, abs=1e-5), name
  names = full.get_variable_to_shape_map()
  assert "bert/embeddings/position_embeddings" in names
  for name in names:
    np.testing.assert_allclose(chunked.get_tensor(name), full.get_tensor(name),
                               rtol=0, atol=1e-5, err_msg=name)
  # Three steps at lr 1e-3 moved the position table, rows reached only
  # through the hierarchical positions included.
  start = tf.train.load_checkpoint(str(small / "bert_model.ckpt"))
  assert np.abs(full.get_tensor("bert/embeddings/position_embeddings") -
                start.get_tensor("bert/embeddings/position_embeddings")
                ).max() > 1e-4


@pytest.mark.slow
def test_run_classifier_at_twice_the_table_chunked_equals_full(
    fixtures_dir, tmp_path):
  small = fixtures_dir / "original_bert_small"
  mrpc = fixtures_dir / "glue" / "MRPC"
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  train = (mrpc / "train.tsv").read_text(encoding="utf-8").splitlines(True)
  for name, lines in (("train.tsv", train[:17]), ("dev.tsv", train[:17]),
                      ("test.tsv", (mrpc / "test.tsv").read_text(
                          encoding="utf-8").splitlines(True)[:9])):
    (data_dir / name).write_text("".join(lines), encoding="utf-8")

  results = []
  for chunk_size in (None, 16):
    out = tmp_path / ("out_%s" % chunk_size)
    script_runner.run_main(
        "run_classifier", "--task_name=MRPC", "--data_dir=%s" % data_dir,
        "--vocab_file=%s" % (small / "vocab.txt"),
        "--bert_config_file=%s" % write_config(
            fixtures_dir, tmp_path / ("config_%s.json" % chunk_size),
            chunk_size),
        "--init_checkpoint=%s" % (small / "bert_model.ckpt"),
        "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--output_dir=%s" % out,
        "--do_train", "--do_eval", "--do_predict", "--train_batch_size=8",
        "--num_train_epochs=2", "--learning_rate=1e-3", "--seed=1")
    lengths = [int(np.sum(features["input_mask"])) for features in
               record_format.read_records(str(out / "train.tf_record"))]
    results.append((lengths,
                    metrics.read_eval_results(str(out / "eval_results.txt")),
                    np.loadtxt(str(out / "test_results.tsv"))))
  (lengths, full_eval, full_test), (_, chunked_eval, chunked_test) = results
  # The pairs are longer than the table (the small vocabulary's wordpieces
  # are short): every one uses hierarchical positions.
  assert min(lengths) > 40, lengths
  assert full_eval["global_step"] == chunked_eval["global_step"] == 4
  for name, value in full_eval.items():
    assert chunked_eval[name] == pytest.approx(value, abs=1e-5), name
  np.testing.assert_allclose(chunked_test, full_test, rtol=0, atol=1e-5)
  assert full_test.shape == (8, 2)
