"""The TFRecord formats of the original BERT: specs, decoding, features.

A pretraining record is a `tf.train.Example` with the seven features that
the original `create_pretraining_data.py` writes and `run_pretraining.py`
reads:

  input_ids             int64 [max_seq_length]           zero padded
  input_mask            int64 [max_seq_length]           1 for real tokens
  segment_ids           int64 [max_seq_length]           0 = A, 1 = B
  masked_lm_positions   int64 [max_predictions_per_seq]  zero padded
  masked_lm_ids         int64 [max_predictions_per_seq]  zero padded
  masked_lm_weights     float [max_predictions_per_seq]  1.0 real, 0.0 padding
  next_sentence_labels  int64 [1]                        1 = random next

SpanBERT's records (`PretrainingTasks`): `--sentence_task=none` writes no
`next_sentence_labels`; `--masking=span` adds, for each masked position i of
a span [s, e] (zero padded like `masked_lm_positions`):

  masked_lm_span_left    int64 [max_predictions_per_seq]  s - 1
  masked_lm_span_right   int64 [max_predictions_per_seq]  e + 1
  masked_lm_span_offset  int64 [max_predictions_per_seq]  i - s

The fine-tuning records (classifier, SQuAD) are `tf.train.Example`s too; their
specs live with their tasks' data (`glue`, `squad`). This module holds what
every record kind shares: building features (`create_int_feature`,
`features_to_example`), parsing them (`decode_record`), reading a whole
file back as Python values (`read_records`, for checks and tests), and
naming the file behind tf.data's anonymous `DataLossError`
(`corrupt_files_named`). The bytes
of pretraining records are written by `record_encoder`, the files by
`record_writers`.
"""

import collections
import contextlib
import dataclasses
import re

import tensorflow as tf

PRETRAINING_FEATURE_NAMES = (
    "input_ids", "input_mask", "segment_ids", "masked_lm_positions",
    "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")
SPAN_BOUNDARY_FEATURE_NAMES = (
    "masked_lm_span_left", "masked_lm_span_right", "masked_lm_span_offset")


@dataclasses.dataclass(frozen=True)
class PretrainingTasks:
  """Which objectives beside the masked LM a pretraining record carries.

  Attributes:
    next_sentence: the record has `next_sentence_labels` (NSP, or SOP).
    span_boundary: the record has the `masked_lm_span_*` features (SBO).
  """
  next_sentence: bool = True
  span_boundary: bool = False

  def describe(self):
    """Returns e.g. "masked LM + next sentence" for log lines."""
    return " + ".join(["masked LM"] +
                      ["next sentence"] * self.next_sentence +
                      ["span boundary"] * self.span_boundary)


def pretraining_feature_spec(max_seq_length, max_predictions_per_seq,
                             tasks=None):
  """Returns the `tf.io.parse_single_example` spec of a pretraining record.

  Args:
    max_seq_length: length of `input_ids`, `input_mask` and `segment_ids`.
    max_predictions_per_seq: length of the `masked_lm_*` features.
    tasks: the record's `PretrainingTasks`; default the original's (masked
      LM + next sentence).

  Returns:
    A dict from feature name to `tf.io.FixedLenFeature`, as in the original
    `run_pretraining.input_fn_builder` for the original tasks.
  """
  tasks = tasks or PretrainingTasks()
  seq = [max_seq_length]
  preds = [max_predictions_per_seq]
  spec = {
      "input_ids": tf.io.FixedLenFeature(seq, tf.int64),
      "input_mask": tf.io.FixedLenFeature(seq, tf.int64),
      "segment_ids": tf.io.FixedLenFeature(seq, tf.int64),
      "masked_lm_positions": tf.io.FixedLenFeature(preds, tf.int64),
      "masked_lm_ids": tf.io.FixedLenFeature(preds, tf.int64),
      "masked_lm_weights": tf.io.FixedLenFeature(preds, tf.float32),
  }
  if tasks.next_sentence:
    spec["next_sentence_labels"] = tf.io.FixedLenFeature([1], tf.int64)
  if tasks.span_boundary:
    for name in SPAN_BOUNDARY_FEATURE_NAMES:
      spec[name] = tf.io.FixedLenFeature(preds, tf.int64)
  return spec


def decode_record(record, name_to_features):
  """Parses one serialized record and casts int64 features to int32.

  Args:
    record: scalar string tensor, a serialized `tf.train.Example`.
    name_to_features: a spec such as `pretraining_feature_spec(...)`.

  Returns:
    A dict from feature name to tensor; int64 features become int32 (as the
    original does, since TPUs only support int32), floats stay float32.
  """
  example = tf.io.parse_single_example(record, name_to_features)
  return {name: (tf.cast(t, tf.int32) if t.dtype == tf.int64 else t)
          for name, t in example.items()}


def create_int_feature(values):
  """Returns an int64 `tf.train.Feature` holding `values` (ints)."""
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def create_float_feature(values):
  """Returns a float `tf.train.Feature` holding `values` (floats)."""
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def features_to_example(features):
  """Returns the serialized `tf.train.Example` of a feature dict."""
  return tf.train.Example(
      features=tf.train.Features(feature=features)).SerializeToString()


def feature_values(feature):
  """Returns the values of a `tf.train.Feature` as a Python list."""
  kind = feature.WhichOneof("kind")
  return list(getattr(feature, kind).value) if kind else []


def read_records(path):
  """Reads a TFRecord file of `tf.train.Example`s into Python values.

  Args:
    path: a TFRecord file (not compressed).

  Returns:
    A list, in file order, of `OrderedDict`s from feature name (sorted) to the
    list of its values.
  """
  records = []
  for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
    example = tf.train.Example.FromString(serialized)
    feature_map = example.features.feature
    records.append(collections.OrderedDict(
        (name, feature_values(feature_map[name]))
        for name in sorted(feature_map)))
  return records


def find_corrupt_record(paths):
  """The first TFRecord file that cannot be read to its end, and why.

  Args:
    paths: TFRecord files, in the order to check them.

  Returns:
    (path, byte offset of the bad record, what TensorFlow found there, e.g.
    "truncated record at 232"), or None if every file reads.
  """
  for path in paths:
    offset = 0
    try:
      for record in tf.data.TFRecordDataset(path):
        # A record is framed by a uint64 length and two uint32 checksums.
        offset += 16 + len(record.numpy())
    except tf.errors.DataLossError as e:
      found = re.search(r"(truncated|corrupted) record at \d+", e.message)
      return path, offset, found.group(0) if found else e.message
  return None


@contextlib.contextmanager
def corrupt_files_named(paths):
  """Turns tf.data's `DataLossError` into an error naming the file and offset.

  tf.data reports a truncated or corrupt TFRecord as `truncated record at N`
  without the file. Inside this context such an error is traced to the first
  of `paths` that does not read (a pass over the files, made only on
  failure) and raised again as a `ValueError` naming it.

  Args:
    paths: the TFRecord files being read.

  Yields:
    Nothing.

  Raises:
    ValueError: naming the file, the byte offset of the bad record and
      TensorFlow's message (the original error chained).
  """
  try:
    yield
  except tf.errors.DataLossError as e:
    found = find_corrupt_record(paths)
    if found is None:
      raise
    path, offset, message = found
    raise ValueError(
        "TFRecord file %s is truncated or corrupt: the record at byte offset "
        "%d does not read (%s); rewrite the file" % (path, offset, message)
    ) from e
