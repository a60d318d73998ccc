"""The pretraining TFRecord format of the original BERT, written and read.

Each record is a `tf.train.Example` with the seven features that the original
`create_pretraining_data.py` writes and `run_pretraining.py` reads:

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

Files are written under a temporary name (`<name>.tmp-<pid>`) and renamed to
their final name only when every record is in, so a failed run never leaves a
truncated file that looks complete.
"""

import collections
import dataclasses
import os
import struct

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


def finetuning_dataset(input_file, name_to_features, batch_size, is_training,
                       drop_remainder, input_context=None, seed=None):
  """Reads fine-tuning TFRecords (classifier, SQuAD) as the original input_fn.

  Args:
    input_file: TFRecord path.
    name_to_features: the parsing spec of one record.
    batch_size: batch size of this dataset (per replica under a strategy).
    is_training: repeat and shuffle (buffer 100, as the original).
    drop_remainder: drop a last partial batch.
    input_context: `tf.distribute.InputContext` to shard the file by input
      pipeline (multi-worker), or None.
    seed: shuffle seed, or None.

  Returns:
    A `tf.data.Dataset` of dicts of batched features (int64 cast to int32).
  """
  d = tf.data.TFRecordDataset(input_file)
  if input_context is not None and input_context.num_input_pipelines > 1:
    d = d.shard(input_context.num_input_pipelines,
                input_context.input_pipeline_id)
  if is_training:
    d = d.repeat()
    d = d.shuffle(buffer_size=100, seed=seed)
  d = d.map(lambda record: decode_record(record, name_to_features),
            num_parallel_calls=tf.data.AUTOTUNE)
  return d.batch(batch_size, drop_remainder=drop_remainder)


def create_int_feature(values):
  """Returns an int64 `tf.train.Feature` holding `values` (ints)."""
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def create_float_feature(values):
  """Returns a float `tf.train.Feature` holding `values` (floats)."""
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _varint(value):
  """Returns the protobuf base-128 varint bytes of a non-negative int."""
  if value < 0:
    raise ValueError("negative value %d in a pretraining record" % value)
  out = bytearray()
  while value > 0x7F:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


def _field(tag, payload):
  """Returns a length-delimited protobuf field: tag, length, payload."""
  return tag + _varint(len(payload)) + payload


# Wire tags (field number << 3 | 2, length-delimited) of the messages of
# `tf.train.Example`: Example.features = 1, Features.feature (map entries) = 1,
# entry key = 1 and value = 2, Feature.float_list = 2 and .int64_list = 3, and
# the packed `value` = 1 of Int64List and FloatList.
_TAG_1, _TAG_2, _TAG_3 = b"\x0a", b"\x12", b"\x1a"
_FLOAT_ONE, _FLOAT_ZERO = struct.pack("<f", 1.0), struct.pack("<f", 0.0)


# The features before the span ones, by "has no next sentence label".
_FEATURE_NAMES = {False: PRETRAINING_FEATURE_NAMES,
                  True: PRETRAINING_FEATURE_NAMES[:-1]}


class _TokenVarints(dict):
  """Token -> the varint of its id, filled from a vocabulary.

  A token the vocabulary's items do not list is looked up in the vocabulary
  itself: a SentencePiece vocabulary (`tokenization.SentencePieceVocab`)
  gives `<unk>`'s id, a WordPiece one raises KeyError as `convert_by_vocab`.
  """

  def __init__(self, vocab):
    super().__init__((token, _varint(i)) for token, i in vocab.items())
    self._vocab = vocab

  def __missing__(self, token):
    return _varint(self._vocab[token])


class PretrainingRecordEncoder(object):
  """Serializes training instances to pretraining `tf.train.Example`s.

  The bytes are written directly in the protobuf wire format (packed int64
  varints, fixed32 floats): they parse to the same `tf.train.Example` as
  building it from `tf.train.Feature`s, at a fraction of the cost. Each
  token's varint is computed once, from the vocabulary, and so is the framing
  of a feature for each length of its values.
  """

  def __init__(self, vocab, max_seq_length, max_predictions_per_seq):
    """Prepares the encoder.

    Args:
      vocab: dict from token to id (`FullTokenizer.vocab`; a SentencePiece
        one maps unknown pieces to `<unk>`).
      max_seq_length: pad `input_ids`, `input_mask`, `segment_ids` to this.
      max_predictions_per_seq: pad the `masked_lm_*` features to this.
    """
    self.max_seq_length = max_seq_length
    self.max_predictions_per_seq = max_predictions_per_seq
    self._token_bytes = _TokenVarints(vocab)
    # Varints of positions and segment ids (below max_seq_length). Below
    # 128 a varint is the byte itself, and `bytes(list)` encodes them all.
    int_bytes = [_varint(i) for i in range(max(max_seq_length, 2))]
    self._encode_small_ints = (
        bytes if max_seq_length <= 128 else
        lambda values: b"".join(map(int_bytes.__getitem__, values)))
    # (feature name, payload length) -> the bytes of its map entry before
    # the payload; see `_prefix`.
    self._prefixes = {}

  def _prefix(self, name, num_bytes):
    """Returns the framing of a feature's map entry, up to its values.

    Args:
      name: the feature name (`masked_lm_weights` is a float feature, the
        others int64).
      num_bytes: the length of the packed values (varints or fixed32).

    Returns:
      The bytes of `Features.feature` entry {key: name, value: Feature{
      int64_list or float_list {value: packed}}} without the packed values.
    """
    key = (name, num_bytes)
    prefix = self._prefixes.get(key)
    if prefix is None:
      kind_tag = _TAG_2 if name == "masked_lm_weights" else _TAG_3
      # Tag and length of the packed values (none when empty).
      values = _TAG_1 + _varint(num_bytes) if num_bytes else b""
      feature = kind_tag + _varint(len(values) + num_bytes) + values
      entry = (_field(_TAG_1, name.encode("utf-8")) + _TAG_2 +
               _varint(len(feature) + num_bytes) + feature)
      prefix = _TAG_1 + _varint(len(entry) + num_bytes) + entry
      self._prefixes[key] = prefix
    return prefix

  def encode(self, instance):
    """Returns the serialized `tf.train.Example` of one instance.

    Args:
      instance: a `TrainingInstance` (tokens, segment_ids,
        masked_lm_positions, masked_lm_labels, is_random_next,
        masked_lm_spans).

    Returns:
      bytes with the padded features of the module docstring, in its order:
      no `next_sentence_labels` when `is_random_next` is None, the
      `masked_lm_span_*` features when `masked_lm_spans` is not None.

    Raises:
      ValueError: if the instance is longer than the padded lengths.
    """
    num_tokens = len(instance.tokens)
    num_predictions = len(instance.masked_lm_positions)
    if num_tokens > self.max_seq_length:
      raise ValueError("instance has %d tokens, more than max_seq_length=%d" %
                       (num_tokens, self.max_seq_length))
    if num_predictions > self.max_predictions_per_seq:
      raise ValueError(
          "instance has %d masked positions, more than "
          "max_predictions_per_seq=%d" % (num_predictions,
                                          self.max_predictions_per_seq))
    seq_pad = b"\x00" * (self.max_seq_length - num_tokens)
    num_pad = self.max_predictions_per_seq - num_predictions
    pred_pad = b"\x00" * num_pad
    token_bytes = self._token_bytes.__getitem__
    small_ints = self._encode_small_ints
    payloads = (
        b"".join(map(token_bytes, instance.tokens)) + seq_pad,
        b"\x01" * num_tokens + seq_pad,
        small_ints(instance.segment_ids) + seq_pad,
        small_ints(instance.masked_lm_positions) + pred_pad,
        b"".join(map(token_bytes, instance.masked_lm_labels)) + pred_pad,
        _FLOAT_ONE * num_predictions + _FLOAT_ZERO * num_pad,
    )
    if instance.is_random_next is not None:
      payloads += (b"\x01" if instance.is_random_next else b"\x00",)
    names = _FEATURE_NAMES[instance.is_random_next is None]
    if instance.masked_lm_spans is not None:
      spans = instance.masked_lm_spans
      payloads += (
          small_ints([first - 1 for first, _ in spans]) + pred_pad,
          small_ints([last + 1 for _, last in spans]) + pred_pad,
          small_ints([i - first for i, (first, _) in zip(
              instance.masked_lm_positions, spans)]) + pred_pad)
      names += SPAN_BOUNDARY_FEATURE_NAMES
    prefix = self._prefix
    features = b"".join([prefix(name, len(payload)) + payload
                         for name, payload in zip(names, payloads)])
    return _field(_TAG_1, features)


def features_to_example(features):
  """Returns the serialized `tf.train.Example` of a feature dict."""
  return tf.train.Example(
      features=tf.train.Features(feature=features)).SerializeToString()


def feature_values(feature):
  """Returns the values of a `tf.train.Feature` as a Python list."""
  kind = feature.WhichOneof("kind")
  return list(getattr(feature, kind).value) if kind else []


def temporary_path(path, token=None):
  """Returns the name under which `path` is written until it is complete.

  Args:
    path: the final path.
    token: what tells this run's temporary files apart; default the pid.
  """
  return "%s.tmp-%s" % (path, os.getpid() if token is None else token)


def commit_temporary_files(paths, token=None):
  """Renames the temporary files of `paths` to their final names."""
  for path in paths:
    tf.io.gfile.rename(temporary_path(path, token), path, overwrite=True)


def remove_temporary_files(paths, token=None):
  """Deletes whatever temporary files of `paths` exist."""
  for path in paths:
    tmp = temporary_path(path, token)
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)


class RoundRobinRecordWriter(object):
  """Writes serialized records round-robin over files, renamed when complete.

  Record i goes to file i % len(output_files), as in the original. Until
  `close()` the files exist only under `temporary_path(name, token)`;
  `close()` renames them to their final names, `abort()` deletes them. Used as
  a context manager, an exception aborts.
  """

  def __init__(self, output_files, token=None):
    """Opens the temporary files.

    Args:
      output_files: list of final output paths (at least one).
      token: the temporary names' token (see `temporary_path`).

    Raises:
      ValueError: if `output_files` is empty or names a file twice.
    """
    if not output_files:
      raise ValueError("no output file given")
    if len(set(output_files)) != len(output_files):
      raise ValueError("an output file is named twice in %s" %
                       ",".join(output_files))
    self.output_files = list(output_files)
    self._token = token
    self._writers = []
    try:
      for path in self.output_files:
        self._writers.append(
            tf.io.TFRecordWriter(temporary_path(path, token)))
    except Exception:
      self.abort()
      raise
    self._next = 0
    self.num_written = 0

  def write(self, serialized):
    """Writes one serialized record to the next file in turn."""
    self._writers[self._next].write(serialized)
    self._next = (self._next + 1) % len(self._writers)
    self.num_written += 1

  def _close_writers(self):
    for writer in self._writers:
      writer.close()
    self._writers = []

  def close(self, rename=True):
    """Closes the files and, by default, renames them to their final names.

    Args:
      rename: False leaves them under their temporary names, for a caller
        that commits several writers' files together
        (`commit_temporary_files`).

    Returns:
      The list of final output paths.
    """
    self._close_writers()
    if rename:
      commit_temporary_files(self.output_files, self._token)
    return self.output_files

  def abort(self):
    """Closes and deletes the temporary files; final names are not touched."""
    self._close_writers()
    remove_temporary_files(self.output_files, self._token)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc_value, traceback):
    if exc_type is None:
      self.close()
    else:
      self.abort()
    return False


def read_examples(path):
  """Reads a TFRecord file of `tf.train.Example`s.

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
