"""A byte-level LM corpus: bytes -> ids -> ordered TFRecords -> batches.

The layout is that of kimiyoung/transformer-xl `tf/data_utils.py` (GPU path):
the id stream is cut into `batch_size` rows (`batchify`), and for every step t
(0, tgt_len, 2 tgt_len, ...) each row writes one record with `inputs` =
row[t : t + len] and `labels` = row[t + 1 : t + len + 1] (int64 lists; the
last step may be shorter). Reading the records in order and batching
`batch_size` of them gives step after step of [batch_size, tgt_len]
segments in which row b continues row b of the previous step, which is what
the memory of Transformer-XL needs; the model transposes them to time-major.

Ids are the ranks of the byte values present in the corpus (the vocabulary
`vocab_bytes`, ascending byte values), as in the fixtures of the original
code. Files: `<split>.bsz-<B>.tlen-<T>.tfrecords`, the original's
`record_info-<split>.bsz-<B>.tlen-<T>.json` (`filenames`, `bin_sizes`,
`num_batch`) and `corpus-info.json` (`vocab_size`, `cutoffs`, `dataset`, plus
`vocab_bytes`).
"""

import json
import os

import numpy as np
import tensorflow as tf

from bert_tf import file_io

SPLITS = ("train", "valid", "test")


def build_vocab(data):
  """The byte values present in `data`, ascending (id i is byte vocab[i]).

  Args:
    data: bytes.

  Returns:
    list of ints in [0, 255].
  """
  return sorted(set(data))


def encode(data, vocab, source="data"):
  """Maps bytes to ids of `vocab`.

  Args:
    data: bytes.
    vocab: list of byte values (see `build_vocab`).
    source: what `data` is, for error messages.

  Returns:
    int64 numpy array [len(data)].

  Raises:
    ValueError: if a byte of `data` is not in `vocab`.
  """
  table = np.full([256], -1, np.int64)
  table[np.asarray(vocab, np.int64)] = np.arange(len(vocab))
  ids = table[np.frombuffer(data, np.uint8)]
  if (ids < 0).any():
    position = int(np.argmax(ids < 0))
    raise ValueError("%s: byte %d at offset %d is not in the vocabulary of "
                     "%d byte values" % (source, data[position], position,
                                         len(vocab)))
  return ids


def split_corpus(data, valid_fraction, test_fraction):
  """Cuts a corpus into train, valid and test (in this order, as enwik8).

  Args:
    data: bytes of the whole corpus.
    valid_fraction: share of the bytes for valid (after train).
    test_fraction: share of the bytes for test (at the end).

  Returns:
    dict: split name -> bytes.

  Raises:
    ValueError: if the fractions are not in [0, 1) or leave no training data.
  """
  for name, value in (("valid_fraction", valid_fraction),
                      ("test_fraction", test_fraction)):
    if not 0.0 <= value < 1.0:
      raise ValueError("%s must be in [0, 1), got %r" % (name, value))
  num_valid = int(len(data) * valid_fraction)
  num_test = int(len(data) * test_fraction)
  num_train = len(data) - num_valid - num_test
  if num_train <= 0:
    raise ValueError("valid_fraction + test_fraction = %r leave no training "
                     "data" % (valid_fraction + test_fraction))
  return {"train": data[:num_train],
          "valid": data[num_train:num_train + num_valid],
          "test": data[num_train + num_valid:]}


def batchify(ids, batch_size):
  """Cuts the id stream into `batch_size` rows (dropping the remainder).

  Args:
    ids: 1-D int array.
    batch_size: number of rows.

  Returns:
    int array [batch_size, len(ids) // batch_size].
  """
  num_step = len(ids) // batch_size
  return np.reshape(ids[:batch_size * num_step], [batch_size, num_step])


def record_file_name(split, batch_size, tgt_len):
  """The original file name of a split's records (see the module docstring)."""
  return "%s.bsz-%d.tlen-%d.tfrecords" % (split, batch_size, tgt_len)


def record_info_name(split, batch_size, tgt_len):
  """The original name of a split's record info JSON."""
  return "record_info-%s.bsz-%d.tlen-%d.json" % (split, batch_size, tgt_len)


def create_ordered_tfrecords(save_dir, split, ids, batch_size, tgt_len):
  """Writes a split's records in the original order, and its record info.

  Args:
    save_dir: output directory.
    split: split name (the file name's prefix).
    ids: 1-D int array of the split.
    batch_size: rows of the stream (the batch size that will read it).
    tgt_len: segment length.

  Returns:
    (path of the records, number of steps `num_batch`).

  Raises:
    ValueError: if the split is too short for one step of this batch size.
  """
  batched = batchify(ids, batch_size)
  if batched.shape[1] < 2:
    raise ValueError("The %s split has %d tokens: too few for one step of "
                     "batch_size %d (each row needs at least 2 tokens)" %
                     (split, len(ids), batch_size))
  tf.io.gfile.makedirs(save_dir)
  file_name = record_file_name(split, batch_size, tgt_len)
  path = os.path.join(save_dir, file_name)
  num_batch = 0
  with file_io.atomic_path(path) as temp, tf.io.TFRecordWriter(temp) as writer:
    for t in range(0, batched.shape[1] - 1, tgt_len):
      cur_tgt_len = min(batched.shape[1] - 1 - t, tgt_len)
      for row in batched:
        feature = {
            "inputs": _int64_feature(row[t:t + cur_tgt_len]),
            "labels": _int64_feature(row[t + 1:t + cur_tgt_len + 1]),
        }
        example = tf.train.Example(
            features=tf.train.Features(feature=feature))
        writer.write(example.SerializeToString())
      num_batch += 1
  info = {"filenames": [file_name], "bin_sizes": [], "num_batch": num_batch}
  _write_json(os.path.join(save_dir, record_info_name(split, batch_size,
                                                      tgt_len)), info)
  return path, num_batch


def write_corpus_info(save_dir, vocab, dataset="bytes"):
  """Writes `corpus-info.json` (the original keys, plus `vocab_bytes`).

  Args:
    save_dir: output directory.
    vocab: list of byte values.
    dataset: name of the corpus.

  Returns:
    The dict written.
  """
  tf.io.gfile.makedirs(save_dir)
  info = {"vocab_size": len(vocab), "cutoffs": [], "dataset": dataset,
          "vocab_bytes": list(vocab)}
  _write_json(os.path.join(save_dir, "corpus-info.json"), info)
  return info


def prepare_corpus(input_file, save_dir, train_batch_size, eval_batch_size,
                   tgt_len, eval_tgt_len, valid_fraction=0.05,
                   test_fraction=0.05):
  """Turns a text file's bytes into the records of every split.

  The vocabulary is the byte values of the whole file (the original counts
  train, valid and test for enwik8). Train is written for
  `train_batch_size`/`tgt_len`, valid and test for
  `eval_batch_size`/`eval_tgt_len`. Existing files are rewritten.

  Args:
    input_file: path of the text file.
    save_dir: output directory.
    train_batch_size: rows of the train stream.
    eval_batch_size: rows of the valid and test streams.
    tgt_len: train segment length.
    eval_tgt_len: eval segment length.
    valid_fraction: share of the bytes for valid.
    test_fraction: share of the bytes for test.

  Returns:
    dict: `corpus_info` (the corpus-info dict) and, per split, its
    `num_batch` (`train_num_batch`, ...; splits with no bytes are skipped).

  Raises:
    ValueError: if the file is missing or empty, or a split is too short.
  """
  if not tf.io.gfile.exists(input_file):
    raise ValueError("Input file not found: %s" % input_file)
  with tf.io.gfile.GFile(input_file, "rb") as f:
    data = f.read()
  if not data:
    raise ValueError("Input file %s is empty" % input_file)
  vocab = build_vocab(data)
  result = {"corpus_info": write_corpus_info(save_dir, vocab)}
  for split, part in split_corpus(data, valid_fraction,
                                  test_fraction).items():
    if not part:
      continue
    ids = encode(part, vocab, source="%s (%s split)" % (input_file, split))
    batch_size, length = ((train_batch_size, tgt_len) if split == "train"
                          else (eval_batch_size, eval_tgt_len))
    _, num_batch = create_ordered_tfrecords(save_dir, split, ids, batch_size,
                                            length)
    result["%s_num_batch" % split] = num_batch
  return result


def _parse(record):
  """A record -> (inputs, labels) int32 [len]."""
  spec = {"inputs": tf.io.VarLenFeature(tf.int64),
          "labels": tf.io.VarLenFeature(tf.int64)}
  example = tf.io.parse_single_example(record, spec)
  return (tf.cast(tf.sparse.to_dense(example["inputs"]), tf.int32),
          tf.cast(tf.sparse.to_dense(example["labels"]), tf.int32))


def input_dataset(record_path, batch_size, training, input_context=None,
                  start_step=0):
  """Reads ordered records as per-replica batches of consecutive segments.

  Records of a step are `batch_size` consecutive rows. With R replicas fed by
  one pipeline, the replica batches of a step come out one after the other,
  so replica r always receives the same rows of the stream (rows r*B/R to
  (r+1)*B/R - 1), as the original split of each batch over GPUs; with P
  pipelines, pipeline p reads rows p*B/P to (p+1)*B/P - 1 of every step.

  Args:
    record_path: path of records written by `create_ordered_tfrecords` for
      this `batch_size`.
    batch_size: global batch size (rows of the stream).
    training: repeat forever, from step `start_step`; else read once.
    input_context: `tf.distribute.InputContext` or None (one replica).
    start_step: steps already trained (skipped, modulo the number of steps).

  Returns:
    A `tf.data.Dataset` of (inputs, labels) int32 [per-replica batch, len].

  Raises:
    ValueError: if `batch_size` is not divisible by the number of replicas.
  """
  num_replicas = input_context.num_replicas_in_sync if input_context else 1
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline = input_context.input_pipeline_id if input_context else 0
  if batch_size % num_replicas:
    raise ValueError("The batch size %d is not divisible by the %d replicas" %
                     (batch_size, num_replicas))
  per_replica = batch_size // num_replicas
  dataset = tf.data.TFRecordDataset(record_path).map(_parse)
  if training:
    dataset = dataset.cache().repeat()
  if num_pipelines > 1:
    rows = batch_size // num_pipelines
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(
        lambda x, y: (x[pipeline * rows:(pipeline + 1) * rows],
                      y[pipeline * rows:(pipeline + 1) * rows]))
    dataset = dataset.unbatch()
  dataset = dataset.batch(per_replica, drop_remainder=True)
  if training and start_step:
    dataset = dataset.skip(start_step * (num_replicas // num_pipelines))
  return dataset.prefetch(tf.data.AUTOTUNE)


def _int64_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _write_json(path, value):
  """Writes JSON under a temporary name, then renames it into place."""
  with file_io.atomic_file(path) as f:
    json.dump(value, f, indent=2)
