"""Selecting the masked positions of a whole batch of instances at once.

The parallel mode builds its instances as id matrices (`batches`); a
masking strategy whose groups are shuffled and taken greedily (token, whole
word: `MaskingStrategy.batch_group_starts`) selects all rows of such a batch
in one pass here, with the same distribution as its row-by-row selection.
`TokenMatrix` is the batch a strategy sees.
"""

import collections

import numpy as np


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
