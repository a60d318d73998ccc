"""Pretraining instances made in batches of ids with NumPy (parallel mode).

The faithful path (`pretraining_instances.create_instances_from_document`)
masks one instance at a time on token strings, as the original. The parallel
mode, whose stream differs from the original's anyway, makes the segments of
its instances the same way (`pretraining_instances.instance_segments`, on
token ids instead of strings) and then builds and masks a whole batch of them
at once on id matrices, with the same distributions:

* the instance `[CLS] A [SEP] B [SEP]` (or `[CLS] A [SEP]`), its segment ids
  and label, as matrices (`InstanceBatcher.make_batch`);
* the candidates: the positions of the tokens other than `[CLS]` and
  `[SEP]`, and how many of them to mask (`num_predictions`);
* the selection of the masking strategy (`MaskingStrategy.select_batch`):
  strategies whose groups are shuffled and taken greedily (token, whole word)
  select all rows at once (`select_whole_groups`); the others select row by
  row on the row's tokens (`select_rows`);
* the 80/10/10 replacement, per token or once per group, and the features
  of the records (`tfrecords.PretrainingBatch`).
"""

import collections
import itertools

import numpy as np

from bert_tf.data import tfrecords


class TokenMatrix(collections.namedtuple(
    "TokenMatrix", ["ids", "num_tokens", "candidates", "words",
                    "word_start"])):
  """The token ids of a batch of instances, for masking strategies.

  Attributes:
    ids: int64 [N, L] token ids, zero past `num_tokens`.
    num_tokens: int64 [N].
    candidates: bool [N, L], the positions that may be masked (not `[CLS]`,
      `[SEP]` or padding).
    words: list, the token string of each id.
    word_start: bool [len(words)], whether each id starts a word
      (`MaskingStrategy.is_word_start`).
  """

  def row_tokens(self, row):
    """Returns the token strings of one row (a list)."""
    return [self.words[i] for i in self.ids[row, :self.num_tokens[row]]]


def select_whole_groups(group_starts, candidates, num_to_predict, generator):
  """Shuffles each row's groups and takes them greedily, for all rows.

  The original selection (`MaskingStrategy.select_groups`) on every row: a
  group is a run of candidates from a start to the next start (positions
  that are not candidates are skipped, not boundaries); the groups are put in
  a uniformly random order and taken in turn while they fit the budget (one
  that would exceed it is skipped).

  Args:
    group_starts: bool [N, L], the candidates that start a group (the first
      candidate of a row always does).
    candidates: bool [N, L].
    num_to_predict: int [N], the budget of each row.
    generator: a NumPy `Generator`.

  Returns:
    int64 [N, L]: for each selected position the first position of its
    group, -1 elsewhere.
  """
  num_rows, length = candidates.shape
  budget = np.asarray(num_to_predict, np.int64)
  first_candidate = candidates & (np.cumsum(candidates, axis=1) == 1)
  starts = candidates & (group_starts | first_candidate)
  positions = np.arange(length)
  if np.array_equal(starts, candidates):
    # Every group one position: the first `budget` of a random order.
    return np.where(_random_subsets(candidates, budget, generator),
                    positions, -1)
  # group[r, i]: the index of the group of candidate i in its row.
  group = np.cumsum(starts, axis=1) - 1
  num_groups = max(int(group[:, -1].max(initial=-1)) + 1, 1)
  rows = np.broadcast_to(np.arange(num_rows)[:, None], candidates.shape)
  sizes = np.bincount(
      (rows * num_groups + group)[candidates],
      minlength=num_rows * num_groups).reshape(num_rows, num_groups)
  keys = np.where(sizes > 0, generator.random(sizes.shape, np.float32), 2.0)
  order = np.argsort(keys, axis=1)
  ordered_sizes = np.take_along_axis(sizes, order, axis=1)
  taken_ordered = np.zeros(ordered_sizes.shape, bool)
  covered = np.zeros(num_rows, np.int64)
  for j in range(num_groups):
    size = ordered_sizes[:, j]
    take = (size > 0) & (covered + size <= budget)
    taken_ordered[:, j] = take
    covered += np.where(take, size, 0)
    if (covered >= budget).all():
      break
  taken = np.zeros(sizes.shape, bool)
  np.put_along_axis(taken, order, taken_ordered, axis=1)
  selected = candidates & np.take_along_axis(taken, np.maximum(group, 0),
                                             axis=1)
  # The first position of each group: the running last start.
  first = np.maximum.accumulate(np.where(starts, positions, -1), axis=1)
  return np.where(selected, first, -1)


def _random_subsets(candidates, budget, generator):
  """Selects min(budget, candidates) positions of each row, uniformly.

  Selection sampling (Knuth's algorithm S), one column at a time for all
  rows: a candidate is taken with probability (still needed) / (candidates
  from here to the end of the row), which makes every subset of the size
  equally likely.

  Args:
    candidates: bool [N, L].
    budget: int [N].
    generator: a NumPy `Generator`.

  Returns:
    bool [N, L], the selected candidates.
  """
  columns = np.ascontiguousarray(candidates.T)
  uniforms = generator.random(columns.shape)
  # The candidates from column j on, and the positions still needed.
  remaining = columns.sum(axis=0, dtype=np.int64)
  need = np.asarray(budget, np.int64).copy()
  selected = np.zeros(columns.shape, bool)
  for j, column in enumerate(columns):
    take = column & (uniforms[j] * remaining < need)
    selected[j] = take
    remaining -= column
    need -= take
  return selected.T


def select_rows(strategy, tokens, num_to_predict, rng):
  """The selection of `strategy.select`, one row at a time.

  Args:
    strategy: a `MaskingStrategy`.
    tokens: a `TokenMatrix`.
    num_to_predict: int [N], the budget of each row.
    rng: an `InstanceRandom`.

  Returns:
    int64 [N, L]: for each selected position the first position of its
    group, -1 elsewhere.
  """
  group_first = np.full(tokens.ids.shape, -1, np.int64)
  for row, budget in enumerate(np.asarray(num_to_predict).tolist()):
    positions, group_sizes = strategy.select(tokens.row_tokens(row), budget,
                                             rng)
    start = 0
    for size in group_sizes:
      group = positions[start:start + size]
      group_first[row, group] = min(group)
      start += size
  return group_first


class InstanceBatcher(object):
  """Builds and masks batches of instances from their segments, as ids."""

  def __init__(self, options, vocab):
    """Prepares the vocabulary tables.

    Args:
      options: `pretraining_instances.InstanceOptions`.
      vocab: dict from token to id (`FullTokenizer.vocab`); its keys, in
        order, are the words a random replacement picks from, as the
        original's `vocab_words`.
    """
    self.options = options
    vocab_words = list(vocab)
    self.cls_id, self.sep_id, self.mask_id = (
        vocab[token] for token in ("[CLS]", "[SEP]", "[MASK]"))
    # The id of each word a random replacement draws.
    self._replacement_ids = np.array([vocab[w] for w in vocab_words],
                                     np.int64)
    words = [None] * (max(vocab.values()) + 1)
    for word, index in vocab.items():
      words[index] = word
    self.words = words
    masking = options.masking
    self._word_start = np.array(
        [w is not None and masking.is_word_start(w) for w in words], bool)

  def make_batch(self, segments, rng):
    """Makes the masked instances of a list of segments.

    Args:
      segments: list of (ids_a, ids_b, label) from `instance_segments` on
        documents of ids: lists of ints, `ids_b` None for a one-segment
        task, the bool label None for a task without one.
      rng: a `NumpyInstanceRandom` (its `generator` draws the batch's
        selections and replacements).

    Returns:
      A `tfrecords.PretrainingBatch`.
    """
    options = self.options
    generator = rng.generator
    two_segments = segments[0][1] is not None
    cls, sep = [self.cls_id], [self.sep_id]
    num_a = np.fromiter((len(a) for a, _, _ in segments), np.int64,
                        len(segments))
    if two_segments:
      num_tokens = num_a + 3 + np.fromiter(
          (len(b) for _, b, _ in segments), np.int64, len(segments))
      pieces = ((cls, a, sep, b, sep) for a, b, _ in segments)
    else:
      num_tokens = num_a + 2
      pieces = ((cls, a, sep) for a, _, _ in segments)
    positions = np.arange(options.max_seq_length)
    in_seq = positions < num_tokens[:, None]
    ids = np.zeros(in_seq.shape, np.int64)
    ids[in_seq] = np.fromiter(
        itertools.chain.from_iterable(itertools.chain.from_iterable(pieces)),
        np.int64, int(num_tokens.sum()))
    segment_ids = (in_seq & (positions > num_a[:, None] + 1)).astype(np.int64)
    candidates = in_seq & (ids != self.cls_id) & (ids != self.sep_id)
    tokens = TokenMatrix(ids, num_tokens, candidates, self.words,
                         self._word_start)
    # As `pretraining_instances.num_predictions` (round half to even).
    num_to_predict = np.minimum(
        options.max_predictions_per_seq,
        np.maximum(1, np.round(num_tokens * options.masked_lm_prob)).astype(
            np.int64))
    masking = options.masking
    group_first = masking.select_batch(tokens, num_to_predict, rng)
    selected = group_first >= 0
    # The masked positions, increasing, row by row.
    rows_of, masked = np.nonzero(selected)
    num_predictions = selected.sum(axis=1)
    # 80% [MASK], 10% the token kept, 10% a random word: drawn per token, or
    # at the group's first position for the whole group.
    decision = generator.random(len(masked))
    if masking.decide_per_group:
      by_position = np.zeros(ids.shape)
      by_position[rows_of, masked] = decision
      decision = by_position[rows_of, group_first[rows_of, masked]]
    random_words = self._replacement_ids[generator.integers(
        0, len(self._replacement_ids), len(masked))]
    input_ids = ids.copy()
    input_ids[rows_of, masked] = np.where(
        decision < 0.8, self.mask_id,
        np.where(decision >= 0.9, random_words, ids[rows_of, masked]))
    width = options.max_predictions_per_seq
    in_pred = np.arange(width) < num_predictions[:, None]

    def per_prediction(values):
      matrix = np.zeros((len(segments), width), np.int64)
      matrix[in_pred] = values
      return matrix

    batch = tfrecords.PretrainingBatch(
        input_ids=input_ids, num_tokens=num_tokens, segment_ids=segment_ids,
        masked_lm_positions=per_prediction(masked),
        masked_lm_ids=per_prediction(ids[rows_of, masked]),
        num_predictions=num_predictions)
    if segments[0][2] is not None:
      batch.next_sentence_labels = np.array(
          [int(label) for _, _, label in segments], np.int64)
    if masking.span_boundary_features:
      first = group_first[rows_of, masked]
      last = np.full(ids.shape, -1, np.int64)
      np.maximum.at(last, (rows_of, first), masked)
      batch.masked_lm_span_left = per_prediction(first - 1)
      batch.masked_lm_span_right = per_prediction(last[rows_of, first] + 1)
      batch.masked_lm_span_offset = per_prediction(masked - first)
    return batch
