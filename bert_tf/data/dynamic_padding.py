"""Dynamic padding: batches of similar lengths, cut to their longest example.

Fine-tuning and inference records are padded to `max_seq_length` (the
original format, kept on disk), but their examples are short: MRPC pairs have
about 50 of 128 tokens. `batch_by_length` sorts the examples of a window of
`window_batches` batches by length, batches them and cuts the sequence
features (`SEQUENCE_FEATURES`) of every batch to its longest example rounded
up to a multiple of `LENGTH_MULTIPLE` (never above `max_seq_length`), so that
the encoder sees at most max_seq_length / 8 shapes and little padding. For
training the batches of a window are also shuffled, reproducibly from a seed.
`cut_batch` alone cuts batches that keep their order (run_pretraining's
evaluation, whose Estimator `loss` depends on which examples share a batch).

Padding is masked in attention (the -10000 adder), so real tokens get the same
numbers as with full padding, to float round-off. Features that hold positions
(`POSITION_FEATURES`: SQuAD's start/end positions, the masked LM positions)
stay valid: the cut never goes below one past the largest position of the
batch. Every example carries `EXAMPLE_INDEX`, its place in the input, so that
outputs can be put back in input order (`tasks.inference.predict_all`,
`in_input_order`).
"""

import random

import tensorflow as tf

# Batches are cut to a multiple of this (a handful of shapes, aligned matmuls).
LENGTH_MULTIPLE = 8
# Examples are sorted by length within windows of this many batches.
WINDOW_BATCHES = 8
# Features with a sequence axis (axis 1 of a batch), cut with the batch.
SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids", "p_mask")
# Features whose values are positions in the sequence.
POSITION_FEATURES = ("start_positions", "end_positions",
                     "masked_lm_positions", "masked_lm_span_left",
                     "masked_lm_span_right")
# The feature holding each example's index in the input.
EXAMPLE_INDEX = "example_index"


def example_lengths(features):
  """The length of each example: one past its last position to keep.

  Args:
    features: dict of a batch (or window) with `input_mask` [batch, seq] and
      any `POSITION_FEATURES` ([batch] or [batch, num_positions]).

  Returns:
    int32 Tensor [batch]: one past the last 1 of `input_mask`, or past the
    largest position, whichever is larger.
  """
  mask = tf.cast(features["input_mask"], tf.int32)  # [B, S]
  positions = tf.range(1, tf.shape(mask)[1] + 1, dtype=tf.int32)  # [S]
  lengths = tf.reduce_max(mask * positions[None, :], axis=1)  # [B]
  for key in POSITION_FEATURES:
    if key in features:
      values = tf.cast(features[key], tf.int32)
      values = tf.reshape(values, [tf.shape(values)[0], -1])  # [B, P]
      lengths = tf.maximum(lengths, tf.reduce_max(values, axis=1) + 1)
  return lengths


def padded_length(longest, max_seq_length, multiple=LENGTH_MULTIPLE):
  """`longest` rounded up to a multiple of `multiple`, at most max_seq_length.

  Args:
    longest: integer scalar (Tensor or int): a batch's longest example.
    max_seq_length: the records' padded length.
    multiple: the rounding.

  Returns:
    scalar Tensor of `longest`'s dtype: the length the batch is cut to.
  """
  rounded = (longest + multiple - 1) // multiple * multiple
  return tf.minimum(rounded, max_seq_length)


def cut_batch(features, max_seq_length):
  """Cuts a batch's sequence features to its longest example (rounded up).

  Args:
    features: dict of a batch; `SEQUENCE_FEATURES` [batch, max_seq_length].
    max_seq_length: the records' padded length.

  Returns:
    The dict with `SEQUENCE_FEATURES` [batch, padded_length] (a multiple of
    `LENGTH_MULTIPLE` or max_seq_length), other features unchanged.
  """
  length = padded_length(tf.reduce_max(example_lengths(features)),
                         max_seq_length)
  return {key: value[:, :length] if key in SEQUENCE_FEATURES else value
          for key, value in features.items()}


def with_example_index(dataset):
  """Adds `EXAMPLE_INDEX` (int64, counting from 0) to a dataset of dicts."""
  return dataset.enumerate().map(
      lambda index, features: dict(features, **{EXAMPLE_INDEX: index}))


def batch_by_length(dataset, batch_size, max_seq_length, drop_remainder=False,
                    shuffle=False, seed=None, window_batches=WINDOW_BATCHES):
  """Batches examples of similar lengths and cuts each batch to its longest.

  The examples of each window of `window_batches * batch_size` are sorted by
  length (stable: equal lengths keep their order) and batched; with `shuffle`
  the batches of a window come in an order drawn from (seed, window number).

  Args:
    dataset: a `tf.data.Dataset` of single examples (dicts with
      `input_mask` [max_seq_length]; see `example_lengths`).
    batch_size: examples per batch.
    max_seq_length: the records' padded length.
    drop_remainder: drop a last partial batch.
    shuffle: shuffle the batches within each window (training). Windows must
      then be full: the dataset must repeat, with `drop_remainder`.
    seed: the shuffle's seed (None: drawn at random).
    window_batches: batches per window.

  Returns:
    A `tf.data.Dataset` of batches: `SEQUENCE_FEATURES` [batch, length] with
    length a multiple of `LENGTH_MULTIPLE` (or max_seq_length), the other
    features [batch, ...].

  Raises:
    ValueError: for `shuffle` without `drop_remainder`.
  """
  if shuffle and not drop_remainder:
    raise ValueError("batch_by_length: shuffle needs full windows "
                     "(drop_remainder=True on a repeated dataset)")
  window_size = batch_size * window_batches
  seed = random.randrange(2**31) if seed is None else seed

  def sort_window(window_number, window):
    order = tf.argsort(example_lengths(window), stable=True)
    if shuffle:
      batches = tf.reshape(order, [window_batches, batch_size])
      batches = tf.random.experimental.stateless_shuffle(
          batches, seed=tf.stack([tf.constant(seed, tf.int64),
                                  window_number]))
      order = tf.reshape(batches, [-1])
    return {key: tf.gather(value, order) for key, value in window.items()}

  windows = dataset.batch(window_size, drop_remainder=shuffle)
  batches = windows.enumerate().map(sort_window).unbatch()
  batches = batches.batch(batch_size, drop_remainder=drop_remainder)
  return batches.map(lambda features: cut_batch(features, max_seq_length),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def in_input_order(indexed_values):
  """Yields values in the order of their indexes, as soon as each can go.

  Args:
    indexed_values: iterable of (index, value) pairs whose indexes are 0, 1,
      2, ... in any order (e.g. the examples of `batch_by_length` batches).

  Yields:
    The values, by increasing index; a value waits only for the smaller
    indexes still missing (for `batch_by_length` batches, within a window).

  Raises:
    ValueError: if an index is missing or repeated at the end.
  """
  pending = {}
  next_index = 0
  for index, value in indexed_values:
    pending[int(index)] = value
    while next_index in pending:
      yield pending.pop(next_index)
      next_index += 1
  if pending:
    raise ValueError("Outputs of examples %s came without those of example "
                     "%d" % (sorted(pending)[:5], next_index))
