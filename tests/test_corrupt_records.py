"""Truncated or corrupt TFRecords are named, with the byte offset."""


import pytest
import tensorflow as tf

from bert_tf.data import record_format


def _records(path, count=5):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for i in range(count):
      writer.write(bytes([i]) * 100)
  return path


def test_truncated_and_corrupt_files_are_located(tmp_path):
  good = _records(tmp_path / "good.tfrecord")
  data = good.read_bytes()
  truncated = tmp_path / "truncated.tfrecord"
  truncated.write_bytes(data[:300])  # inside the third record (116 bytes each)
  corrupt = tmp_path / "corrupt.tfrecord"
  flipped = bytearray(data)
  flipped[150] ^= 1  # a data byte of the second record
  corrupt.write_bytes(bytes(flipped))
  assert record_format.find_corrupt_record([str(good)]) is None
  assert record_format.find_corrupt_record([str(good), str(truncated)]) == (
      str(truncated), 232, "truncated record at 232")
  assert record_format.find_corrupt_record([str(corrupt)]) == (
      str(corrupt), 116, "corrupted record at 128")


def test_data_loss_in_a_pipeline_names_the_file(tmp_path):
  good = _records(tmp_path / "a.tfrecord")
  bad = tmp_path / "b.tfrecord"
  bad.write_bytes(good.read_bytes()[:300])
  files = [str(good), str(bad)]
  dataset = tf.data.TFRecordDataset(files).batch(3)
  with pytest.raises(ValueError, match=r"TFRecord file .*b.tfrecord is "
                     r"truncated or corrupt: the record at byte offset 232 "
                     r"does not read \(truncated record at 232\)"):
    with record_format.corrupt_files_named(files):
      for _ in dataset:
        pass
  # Other errors pass through unchanged.
  with pytest.raises(KeyError):
    with record_format.corrupt_files_named(files):
      raise KeyError("x")


def test_run_pretraining_names_a_truncated_file(fixtures_dir, tmp_path):
  import script_runner  # pylint: disable=g-import-not-at-top
  small = fixtures_dir / "original_bert_small"
  data = (small / "eval.tfrecord").read_bytes()
  truncated = tmp_path / "records.tfrecord"
  truncated.write_bytes(data[:2000])  # a few whole records, then a cut one
  offset, message = record_format.find_corrupt_record([str(truncated)])[1:]
  output_dir = tmp_path / "out"
  with pytest.raises(ValueError, match=r"TFRecord file .*records.tfrecord is "
                     r"truncated or corrupt: the record at byte offset %d "
                     r"does not read \(%s\)" % (offset, message)):
    script_runner.run_main(
        "run_pretraining", "--bert_config_file=%s" % (small / "bert_config.json"),
        "--input_file=%s" % truncated, "--output_dir=%s" % output_dir,
        "--do_train", "--num_train_steps=3", "--max_seq_length=40",
        "--max_predictions_per_seq=6", "--train_batch_size=8")
  # No checkpoint after the failure.
  assert not tf.io.gfile.glob(str(output_dir / "model.ckpt*"))


def _truncating(write_fn, path_arg):
  """`write_fn`, then its output file cut after its first 2,000 bytes."""

  def write_then_truncate(*args, **kwargs):
    result = write_fn(*args, **kwargs)
    path = args[path_arg]
    data = tf.io.gfile.GFile(path, "rb").read()
    with tf.io.gfile.GFile(path, "wb") as f:
      f.write(data[:2000])
    return result

  return write_then_truncate


@pytest.mark.parametrize("mode", ["--do_train", "--do_predict"])
def test_run_classifier_names_a_truncated_file(fixtures_dir, tmp_path,
                                               monkeypatch, mode):
  """A record file damaged between writing and reading is named."""
  import script_runner  # pylint: disable=g-import-not-at-top
  from bert_tf.data import glue  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(glue, "file_based_convert_examples_to_features",
                      _truncating(glue.file_based_convert_examples_to_features,
                                  4))
  pretrained = fixtures_dir / "original_bert_small" / "pretrained"
  data_dir = tmp_path / "data"  # The first 100 pairs of each file suffice.
  data_dir.mkdir()
  for tsv in ("train.tsv", "test.tsv"):
    lines = (fixtures_dir / "glue" / "MRPC" / tsv).read_text().splitlines(True)
    (data_dir / tsv).write_text("".join(lines[:101]))
  output_dir = tmp_path / "out"
  name = "train.tf_record" if mode == "--do_train" else "predict.tf_record"
  with pytest.raises(ValueError, match=r"TFRecord file .*%s is truncated or "
                     r"corrupt: the record at byte offset \d+" % name):
    script_runner.run_main(
        "run_classifier", "--task_name=MRPC",
        "--data_dir=%s" % data_dir,
        "--vocab_file=%s" % (pretrained / "vocab.txt"),
        "--bert_config_file=%s" % (pretrained / "bert_config.json"),
        "--init_checkpoint=%s" % (pretrained / "bert_model.ckpt"),
        "--output_dir=%s" % output_dir, mode, "--max_seq_length=32",
        "--train_batch_size=8", "--num_train_epochs=1", "--log_examples=0")
  assert not tf.io.gfile.glob(str(output_dir / "model.ckpt*"))
  assert not (output_dir / "test_results.tsv").exists()


def test_pretraining_first_record_checks_name_the_file(tmp_path):
  """A file that is not TFRecords, or not of Examples, is named up front."""
  from bert_tf.data import pretraining_dataset  # pylint: disable=g-import-not-at-top
  text = tmp_path / "notes.txt"
  text.write_text("plain text, not a TFRecord file\n" * 10)
  with pytest.raises(ValueError, match=r"TFRecord file .*notes.txt is "
                     r"truncated or corrupt: the record at byte offset 0 "):
    pretraining_dataset.detect_tasks([str(text)])
  not_examples = _records(tmp_path / "bytes.tfrecord")
  with pytest.raises(ValueError, match=r"The first record of .*bytes.tfrecord "
                     r"is not a tf.train.Example"):
    pretraining_dataset.check_record_lengths([str(not_examples)], 128, 20)
