"""Serializing pretraining instances to TFRecord bytes, a batch at a time.

`PretrainingRecordEncoder` writes the `tf.train.Example`s of the pretraining
format (`record_format`) directly in the protobuf wire format with NumPy,
from a `PretrainingBatch` (matrices of ids: the parallel mode's batches) or
from `TrainingInstance`s (token strings: the faithful mode). The records
parse to the same `tf.train.Example` as building them from
`tf.train.Feature`s, as the original does, at a fraction of the cost.
"""

import dataclasses
import itertools

import numpy as np

from bert_tf.data import record_format


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


@dataclasses.dataclass
class PretrainingBatch:
  """The features of N pretraining instances, as NumPy arrays.

  Row i holds instance i; only its first `num_tokens[i]` tokens and first
  `num_predictions[i]` predictions count (the rest of a row is ignored and
  written as zero padding).

  Attributes:
    input_ids: int [N, T] token ids, T <= max_seq_length.
    num_tokens: int [N].
    segment_ids: int [N, T], 0 for segment A, 1 for B.
    masked_lm_positions: int [N, P] increasing positions, P <= max
      predictions.
    masked_lm_ids: int [N, P] the original ids at those positions.
    num_predictions: int [N].
    next_sentence_labels: int [N] 0/1, or None: the records have no
      `next_sentence_labels` feature.
    masked_lm_span_left, masked_lm_span_right, masked_lm_span_offset: int
      [N, P] the span boundary features of `record_format`, or None
      (all three or none).
  """
  input_ids: np.ndarray
  num_tokens: np.ndarray
  segment_ids: np.ndarray
  masked_lm_positions: np.ndarray
  masked_lm_ids: np.ndarray
  num_predictions: np.ndarray
  next_sentence_labels: np.ndarray = None
  masked_lm_span_left: np.ndarray = None
  masked_lm_span_right: np.ndarray = None
  masked_lm_span_offset: np.ndarray = None


def _ragged_to_matrix(rows, lengths, width):
  """Returns int64 [len(rows), width]: row i starts with rows[i], then 0s."""
  matrix = np.zeros((len(rows), width), np.int64)
  matrix[np.arange(width) < np.asarray(lengths)[:, None]] = np.fromiter(
      itertools.chain.from_iterable(rows), np.int64, sum(lengths))
  return matrix


def _varint_matrix(values):
  """Encodes non-negative ints as varints, one row of bytes per value.

  Args:
    values: int64 array of any shape S.

  Returns:
    (data, valid): uint8 S + [K] and bool S + [K], K the longest varint; the
    valid bytes of a value, in order, are its varint.
  """
  num_bytes = np.ones(values.shape, np.int64)
  rest = values >> 7
  while rest.any():
    num_bytes += rest > 0
    rest >>= 7
  k = np.arange(num_bytes.max(initial=1))
  groups = (values[..., None] >> (7 * k)) & 0x7F
  more = k < num_bytes[..., None] - 1  # The continuation bit.
  data = (groups | (more.astype(np.int64) << 7)).astype(np.uint8)
  return data, k < num_bytes[..., None]


# Values below this are encoded from a table of their varints.
_VARINT_TABLE_LIMIT = 1 << 22


class PretrainingRecordEncoder(object):
  """Serializes pretraining instances to `tf.train.Example`s, in batches.

  The bytes are written directly in the protobuf wire format (packed int64
  varints, fixed32 floats), for a whole batch at once with NumPy: every
  feature's varints are one matrix, the framing of a feature is computed once
  per length of its values, and the records are cut from one buffer. They
  parse to the same `tf.train.Example` as building it from
  `tf.train.Feature`s, at a fraction of the cost.
  """

  def __init__(self, vocab, max_seq_length, max_predictions_per_seq):
    """Prepares the encoder.

    Args:
      vocab: dict from token to id (`FullTokenizer.vocab`; a SentencePiece
        one maps unknown pieces to `<unk>`), for `encode_instances`.
      max_seq_length: pad `input_ids`, `input_mask`, `segment_ids` to this.
      max_predictions_per_seq: pad the `masked_lm_*` features to this.
    """
    self.max_seq_length = max_seq_length
    self.max_predictions_per_seq = max_predictions_per_seq
    self._vocab = vocab
    # (feature name, payload length) -> the bytes of its map entry before
    # the payload; see `_prefix`.
    self._prefixes = {}
    # The varints of 0 .. n - 1, grown as values need (`_varint_table`).
    self._table_bytes = self._table_valid = np.zeros(0, np.uint32)

  def _varint_table(self, high):
    """Returns the varints of 0 .. n - 1 (n > high) for table lookups.

    Returns:
      (data, valid): uint32 [n] each, the 4 bytes (little-endian) of the
      varint of each value (at most 4: n <= 2**28) and 4 bools (1 bytes) that
      tell which of them the varint has.
    """
    if high >= len(self._table_bytes):
      data, valid = _varint_matrix(
          np.arange(max(1 << int(high).bit_length(), 1 << 15)))
      tables = np.zeros((2, len(data), 4), np.uint8)
      tables[0, :, :data.shape[1]] = data
      tables[1, :, :data.shape[1]] = valid
      self._table_bytes, self._table_valid = tables.view("<u4")[..., 0]
    return self._table_bytes, self._table_valid

  def _varint_bytes(self, name, values):
    """Encodes a matrix of non-negative ints as packed varints, row by row.

    Args:
      name: the feature name, for the error message.
      values: int64 [N, C].

    Returns:
      (data, valid): uint8 [N, C * K] and bool [N, C * K], K the longest
      varint of the matrix; the valid bytes of row i, in order, are its C
      varints.

    Raises:
      ValueError: naming the feature, for a negative value.
    """
    num_rows = values.shape[0]
    if not values.size:
      return (np.zeros(values.shape, np.uint8),
              np.zeros(values.shape, bool))
    low, high = values.min(), values.max()
    if low < 0:
      raise ValueError("negative value %d in feature %s of a pretraining "
                       "record" % (low, name))
    if high < 0x80:  # One byte each.
      return (values.astype(np.uint8), np.ones(values.shape, bool))
    if high >= _VARINT_TABLE_LIMIT:
      data, valid = _varint_matrix(values)
    else:
      # Only as many bytes as the largest value of this matrix needs.
      width = (int(high).bit_length() + 6) // 7
      data, valid = (table.take(values).view(dtype).reshape(
          values.shape + (4,))[..., :width] for table, dtype in zip(
              self._varint_table(high), (np.uint8, bool)))
    return data.reshape(num_rows, -1), valid.reshape(num_rows, -1)

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

  def _prefix_bytes(self, name, num_bytes):
    """`_prefix` of each row's payload length, as padded bytes and valid."""
    lengths, row_length = np.unique(num_bytes, return_inverse=True)
    prefixes = [self._prefix(name, int(n)) for n in lengths]
    width = max(len(p) for p in prefixes)
    table = np.zeros((len(prefixes), width), np.uint8)
    for row, prefix in zip(table, prefixes):
      row[:len(prefix)] = np.frombuffer(prefix, np.uint8)
    valid = np.arange(width) < np.array([len(p) for p in prefixes])[:, None]
    return table[row_length], valid[row_length]

  def _check_lengths(self, num_tokens, num_predictions):
    """Raises ValueError if an instance of these sizes does not fit."""
    if num_tokens > self.max_seq_length:
      raise ValueError("instance has %d tokens, more than max_seq_length=%d" %
                       (num_tokens, self.max_seq_length))
    if num_predictions > self.max_predictions_per_seq:
      raise ValueError(
          "instance has %d masked positions, more than "
          "max_predictions_per_seq=%d" % (num_predictions,
                                          self.max_predictions_per_seq))

  def encode_batch(self, batch):
    """Returns the serialized `tf.train.Example`s of a `PretrainingBatch`.

    Args:
      batch: a `PretrainingBatch` of N instances.

    Returns:
      A list of N bytes, each with the padded features of `record_format`,
      in its order: no `next_sentence_labels` when the batch has
      none, the `masked_lm_span_*` features when it has them.

    Raises:
      ValueError: if an instance is longer than the padded lengths, or a
        value is negative.
    """
    num_tokens = np.asarray(batch.num_tokens, np.int64)
    num_predictions = np.asarray(batch.num_predictions, np.int64)
    num_rows = len(num_tokens)
    if not num_rows:
      return []
    self._check_lengths(num_tokens.max(), num_predictions.max())
    in_seq = np.arange(self.max_seq_length) < num_tokens[:, None]
    in_pred = np.arange(self.max_predictions_per_seq) < num_predictions[:, None]

    def padded(values, valid):
      values = np.asarray(values, np.int64)
      if values.shape != valid.shape:
        out = np.zeros(valid.shape, np.int64)
        width = min(values.shape[1], valid.shape[1])
        out[:, :width] = values[:, :width]
        values = out
      return np.where(valid, values, 0)

    int_features = [
        ("input_ids", padded(batch.input_ids, in_seq)),
        ("input_mask", in_seq.astype(np.int64)),
        ("segment_ids", padded(batch.segment_ids, in_seq)),
        ("masked_lm_positions", padded(batch.masked_lm_positions, in_pred)),
        ("masked_lm_ids", padded(batch.masked_lm_ids, in_pred)),
    ]
    weights = in_pred.astype("<f4").view(np.uint8)
    pieces = []
    for name, values in int_features:
      pieces += self._feature_pieces(name, self._varint_bytes(name, values))
    pieces += self._feature_pieces(
        "masked_lm_weights", (weights, np.ones(weights.shape, bool)))
    if batch.next_sentence_labels is not None:
      labels = np.asarray(batch.next_sentence_labels, np.int64)[:, None]
      pieces += self._feature_pieces(
          "next_sentence_labels", self._varint_bytes(
              "next_sentence_labels", labels))
    if batch.masked_lm_span_left is not None:
      for name in record_format.SPAN_BOUNDARY_FEATURE_NAMES:
        values = padded(getattr(batch, name), in_pred)
        pieces += self._feature_pieces(name, self._varint_bytes(name, values))
    # The Example: tag 1 (features), its length, the feature entries.
    num_bytes = sum(n for _, _, n in pieces)
    header = self._varint_bytes("features", num_bytes[:, None])
    pieces = [(np.full((num_rows, 1), _TAG_1[0], np.uint8),
               np.ones((num_rows, 1), bool), None), header + (None,)] + pieces
    data = np.concatenate([d for d, _, _ in pieces], axis=1)
    valid = np.concatenate([v for _, v, _ in pieces], axis=1)
    ends = np.cumsum(num_bytes + 1 + header[1].sum(axis=1)).tolist()
    buffer = data[valid].tobytes()
    return [buffer[start:end] for start, end in zip([0] + ends[:-1], ends)]

  def _feature_pieces(self, name, payload):
    """Returns the pieces of a feature: its framing, its payload.

    Args:
      name: the feature name.
      payload: (data, valid), the packed values of each row (see
        `_varint_bytes`).

    Returns:
      Two (data, valid, num_bytes): the bytes of each row, which of them
      count, and how many count (int [N]).
    """
    data, valid = payload
    if valid.all():
      num_bytes = np.full(len(data), data.shape[1])
    else:
      num_bytes = valid.sum(axis=1)
    prefix, prefix_valid = self._prefix_bytes(name, num_bytes)
    return [(prefix, prefix_valid, prefix_valid.sum(axis=1)),
            (data, valid, num_bytes)]

  def encode_instances(self, instances):
    """Returns the serialized `tf.train.Example`s of `TrainingInstance`s.

    Args:
      instances: a list of `TrainingInstance`s (tokens, segment_ids,
        masked_lm_positions, masked_lm_labels, is_random_next,
        masked_lm_spans), all with a label or all without, all with spans or
        all without.

    Returns:
      A list of bytes, one per instance (see `encode_batch`).

    Raises:
      ValueError: if an instance is longer than the padded lengths, or the
        instances mix labels and no labels (spans and no spans).
    """
    if not instances:
      return []
    for what, attribute in (("a next sentence label", "is_random_next"),
                            ("masked LM spans", "masked_lm_spans")):
      has = {getattr(i, attribute) is not None for i in instances}
      if len(has) > 1:
        raise ValueError("instances with and without %s cannot be encoded "
                         "together" % what)
    num_tokens = [len(i.tokens) for i in instances]
    num_predictions = [len(i.masked_lm_positions) for i in instances]
    self._check_lengths(max(num_tokens), max(num_predictions))
    lookup = self._vocab.__getitem__
    seq, pred = self.max_seq_length, self.max_predictions_per_seq
    matrix = _ragged_to_matrix
    batch = PretrainingBatch(
        input_ids=matrix([map(lookup, i.tokens) for i in instances],
                         num_tokens, seq),
        num_tokens=np.array(num_tokens),
        segment_ids=matrix([i.segment_ids for i in instances], num_tokens,
                           seq),
        masked_lm_positions=matrix(
            [i.masked_lm_positions for i in instances], num_predictions, pred),
        masked_lm_ids=matrix([map(lookup, i.masked_lm_labels)
                              for i in instances], num_predictions, pred),
        num_predictions=np.array(num_predictions))
    if instances[0].is_random_next is not None:
      batch.next_sentence_labels = np.array(
          [int(i.is_random_next) for i in instances])
    if instances[0].masked_lm_spans is not None:
      spans = [i.masked_lm_spans for i in instances]
      batch.masked_lm_span_left = matrix(
          [[first - 1 for first, _ in s] for s in spans], num_predictions,
          pred)
      batch.masked_lm_span_right = matrix(
          [[last + 1 for _, last in s] for s in spans], num_predictions, pred)
      batch.masked_lm_span_offset = matrix(
          [[p - first for p, (first, _) in zip(i.masked_lm_positions, s)]
           for i, s in zip(instances, spans)], num_predictions, pred)
    return self.encode_batch(batch)

  def encode(self, instance):
    """Returns the serialized `tf.train.Example` of one `TrainingInstance`."""
    return self.encode_instances([instance])[0]
