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
