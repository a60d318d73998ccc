"""Masking schemes: which positions the masked LM predicts, what replaces them.

`MaskingStrategy` chooses WHICH positions to mask. `select_groups` yields
groups of positions (one position for `token`, one word for `whole_word`,
1 to 3 words for ALBERT's `ngram`; words are WordPiece words or, with
SentencePiece, ALBERT's). `mask_groups` then decides WHAT replaces them: 80%
`[MASK]`, 10% the original token, 10% a random vocabulary word, drawn per
token (as the original, also for whole-word masking) or once per group when
the strategy sets `decide_per_group` (SpanBERT, `span_masking`). A random
replacement draws its word per token either way. The draws are the
original's, in its order, on an `InstanceRandom` (`randomness`).

A batch of instances as id matrices (the parallel mode) is selected by
`MaskingStrategy.select_batch`: at once (`batch_selection`) for a strategy
that gives `batch_group_starts`, else row by row (`select_rows`).

`MASKING_STRATEGIES` maps the `--masking` values to the strategies; a
scheme in a module of its own (`span_masking`) registers itself there.
"""

import numpy as np

from bert_tf.data.pretraining import batch_selection
from bert_tf.data.pretraining import randomness

CLS, SEP, MASK, UNK = "[CLS]", "[SEP]", "[MASK]", "[UNK]"


class MaskingStrategy(object):
  """Chooses the groups of positions that the masked LM predicts.

  Subclasses define `candidate_groups`; the default `select_groups` shuffles
  the candidates with `rng` and takes them in order while they fit, as the
  original does. A strategy with its own selection (n-grams, spans) overrides
  `select_groups`. `mask_groups` takes the selection as flat positions and
  group sizes (`select`, which a strategy may make cheaper, as
  `TokenMasking`), draws the replacements of all groups at once and then
  calls `after_replacements`, for a strategy whose original draws after
  the replacements (n-grams, and their permutation option).
  """

  name = None
  # True: one 80/10/10 decision per group (SpanBERT); False: one per token.
  decide_per_group = False
  # True: each group is a span whose boundaries the records carry
  # (`masked_lm_span_*`, for the span boundary objective).
  span_boundary_features = False
  # How a word start is recognized: WordPiece (`##` continues a word) or, when
  # True, ALBERT's rule for SentencePiece pieces (`is_sentencepiece_start`).
  sentencepiece = False
  # The records hold up to this many times max_predictions_per_seq
  # predictions (ALBERT's `multiplier`: 2 with its permutation option).
  predictions_multiplier = 1

  def __init__(self, sentencepiece=False):
    """Makes the strategy.

    Args:
      sentencepiece: the tokens are SentencePiece pieces (`--spm_model_file`).
    """
    self.sentencepiece = sentencepiece

  def is_word_start(self, token):
    """Whether `token` starts a word (ALBERT's `is_start_piece`)."""
    if self.sentencepiece:
      return is_sentencepiece_start(token)
    return not token.startswith("##")

  def word_groups(self, tokens):
    """Returns the words of `tokens` as lists of positions, in order.

    As in the original, a continuation piece right after `[SEP]` joins the
    last word of segment A (the special token is skipped, not a word
    boundary), and one right after `[CLS]` starts a group of its own.
    """
    groups = []
    for i, token in enumerate(tokens):
      if token in (CLS, SEP):
        continue
      if groups and not self.is_word_start(token):
        groups[-1].append(i)
      else:
        groups.append([i])
    return groups

  def start(self, seed):
    """Seeds the strategy's own random source, if any, for a new stream.

    Called once before the instances of a stream (`seed`: an int). The
    selection draws from the `rng` it is given; only a strategy that, as its
    original, draws from another generator (NumPy's) keeps one of its own.
    """
    del seed

  def candidate_groups(self, tokens):
    """Returns the candidate groups of positions.

    Args:
      tokens: list of token strings, `[CLS]` and `[SEP]` included.

    Returns:
      A list of lists of positions; `[CLS]` and `[SEP]` are never candidates.
    """
    raise NotImplementedError

  def select_groups(self, tokens, num_to_predict, rng):
    """Yields the groups of positions to mask, in the order they are chosen.

    Args:
      tokens: list of token strings.
      num_to_predict: the number of positions to mask at most.
      rng: a `random.Random`.

    Yields:
      Lists of positions, disjoint, at most `num_to_predict` in total.
    """
    groups = self.candidate_groups(tokens)
    rng.shuffle(groups)
    covered = set()
    for group in groups:
      if len(covered) >= num_to_predict:
        break
      # A group that would exceed the budget is skipped, not cut.
      if len(covered) + len(group) > num_to_predict:
        continue
      if not covered.isdisjoint(group):
        continue
      covered.update(group)
      yield group

  def select(self, tokens, num_to_predict, rng):
    """Returns the selection of `select_groups`, flat.

    Args:
      tokens: list of token strings.
      num_to_predict: the number of positions to mask at most.
      rng: an `InstanceRandom`.

    Returns:
      (positions, group_sizes): the positions of the groups, group after
      group in the order chosen, and the number of positions of each group.
    """
    positions, group_sizes = [], []
    for group in self.select_groups(tokens, num_to_predict, rng):
      positions.extend(group)
      group_sizes.append(len(group))
    return positions, group_sizes

  def after_replacements(self, tokens, positions, rng):
    """Makes the draws the original makes after the replacements (none).

    Args:
      tokens: the instance's tokens, before masking.
      positions: the masked positions.
      rng: the `InstanceRandom` of the selection.

    Returns:
      A list of (position, source) pairs: more predicted positions, each
      taking the token of `source` (none here).
    """
    del tokens, positions, rng
    return []

  def batch_group_starts(self, tokens):
    """The group starts of a selection `select_whole_groups` can make.

    A strategy whose `select_groups` is the default (shuffle the candidate
    groups, take them greedily) returns where its groups start, so a batch
    is selected at once; others return None and are selected row by row.

    Args:
      tokens: a `batch_selection.TokenMatrix`.

    Returns:
      bool [N, L] (only the candidates count), or None.
    """
    del tokens

  def select_batch(self, tokens, num_to_predict, rng):
    """Selects the positions to mask of a batch of instances.

    The same distribution as `select` on each row; the draws are the
    batch's (`rng.generator`) when `batch_group_starts` gives the groups,
    else `select`'s on each row in turn (`select_rows`).

    Args:
      tokens: a `batch_selection.TokenMatrix`.
      num_to_predict: int [N], the positions to mask at most, per row.
      rng: a `NumpyInstanceRandom`.

    Returns:
      int64 [N, L]: for each selected position the first position of its
      group, -1 elsewhere.
    """
    starts = self.batch_group_starts(tokens)
    if starts is None:
      return self.select_rows(tokens, num_to_predict, rng)
    return batch_selection.select_whole_groups(
        starts, tokens.candidates, num_to_predict, rng.generator)

  def select_rows(self, tokens, num_to_predict, rng):
    """The selection of `select`, one row of a batch at a time.

    Args:
      tokens: a `batch_selection.TokenMatrix`.
      num_to_predict: int [N], the budget of each row.
      rng: an `InstanceRandom`.

    Returns:
      int64 [N, L]: for each selected position the first position of its
      group, -1 elsewhere.
    """
    group_first = np.full(tokens.ids.shape, -1, np.int64)
    for row, budget in enumerate(np.asarray(num_to_predict).tolist()):
      positions, group_sizes = self.select(tokens.row_tokens(row), budget, rng)
      start = 0
      for size in group_sizes:
        group = positions[start:start + size]
        group_first[row, group] = min(group)
        start += size
    return group_first


def _non_special_positions(tokens):
  """Returns the positions of the tokens other than `[CLS]` and `[SEP]`."""
  bounds = [-1]
  for special in (CLS, SEP):
    i = -1
    for _ in range(tokens.count(special)):
      i = tokens.index(special, i + 1)
      bounds.append(i)
  bounds.sort()
  bounds.append(len(tokens))
  positions = []
  for a, b in zip(bounds, bounds[1:]):
    positions.extend(range(a + 1, b))
  return positions


class TokenMasking(MaskingStrategy):
  """The original per-WordPiece masking: every token is its own group."""

  name = "token"

  def candidate_groups(self, tokens):
    return [[i] for i in _non_special_positions(tokens)]

  def batch_group_starts(self, tokens):
    return tokens.candidates

  def select(self, tokens, num_to_predict, rng):
    """The first `num_to_predict` positions of the shuffled candidates.

    Shuffling the positions makes the same permutation as shuffling the
    one-position groups, and every group fits until the budget is full.
    """
    positions = rng.shuffled_head(_non_special_positions(tokens),
                                  num_to_predict)
    return positions, [1] * len(positions)


class WholeWordMasking(MaskingStrategy):
  """The original `do_whole_word_mask`: a word and its pieces together.

  Words are `word_groups`: a WordPiece word and its `##` pieces, or (ALBERT,
  `sentencepiece`) a piece that `is_sentencepiece_start` and the pieces after
  it that do not.
  """

  name = "whole_word"

  def candidate_groups(self, tokens):
    return self.word_groups(tokens)

  def batch_group_starts(self, tokens):
    # As `word_groups`: `[CLS]`/`[SEP]` are skipped, not word boundaries.
    return tokens.word_start[tokens.ids]


# Characters that ALBERT's `_is_start_piece_sp` counts as word-continuing
# (besides a-z): its `special_pieces`, ASCII punctuation without the
# apostrophe, "<", "=" and ">". (Its "€" and "£" entries are UTF-8 bytes,
# which no character of a Python 3 str equals.)
_SP_SPECIAL_PIECES = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_SP_CONTINUING_CHARS = _SP_SPECIAL_PIECES | frozenset(
    "abcdefghijklmnopqrstuvwxyz")


def is_sentencepiece_start(piece):
  """ALBERT's word-start rule for a SentencePiece piece.

  A piece starts a word if it begins with "▁" (U+2581) or "<", is a single
  special (punctuation) character, or holds a character that is not, lower
  cased, a-z or one of those special characters (digits, accented or
  foreign letters, ...). Only pieces of a-z and punctuation continue a word.

  Args:
    piece: a token string.

  Returns:
    bool.
  """
  if piece.startswith(("\u2581", "<")) or piece in _SP_SPECIAL_PIECES:
    return True
  return not all(c.lower() in _SP_CONTINUING_CHARS for c in piece)


class NgramMasking(MaskingStrategy):
  """ALBERT's n-gram masking: runs of 1 to `max_ngram` whole words.

  As ALBERT's `create_masked_lm_predictions` with `do_whole_word_mask`: every
  word w starts one candidate, the n-grams `words[w:w+n]` for n = 1 ..
  `max_ngram` (shorter near the end of the instance); the candidates are
  shuffled with `rng`; each, in turn, draws n with probabilities
  proportional to 1/n (`favor_shorter_ngram`; reversed otherwise) and takes
  its n-gram, or the longest shorter one that fits the budget; a candidate
  that does not fit even as one word, or that overlaps masked positions, is
  skipped. The 80/10/10 replacement is drawn per token. After the
  replacements the candidates are shuffled once more (the original does so
  for its permutation option; `after_replacements`), so `rng` stays in step.

  With `permutation` (ALBERT's `--do_permutation`), the candidates in that
  new order are chosen again in the same way (n drawn, shorter n-grams
  tried, a budget of its own), skipping the masked positions; the chosen
  positions, sorted, take the tokens of the same positions shuffled with
  `rng`, and are predicted too (labels: their own tokens), so an instance
  has up to twice the predictions (`predictions_multiplier`).

  The original draws n from NumPy's global generator, never seeded; here it
  comes from a `numpy.random.RandomState` seeded by `start(seed)` (the run's
  `--random_seed`), so a run is reproducible and equals the original run
  after `np.random.seed(random_seed)`.
  """

  name = "ngram"

  def __init__(self, max_ngram=3, favor_shorter_ngram=True,
               sentencepiece=False, seed=12345, permutation=False):
    """Makes the strategy.

    Args:
      max_ngram: the largest n (ALBERT's `--ngram`, at least 1).
      favor_shorter_ngram: P(n) proportional to 1/n if True, to
        1/(max_ngram + 1 - n) if False.
      sentencepiece: the tokens are SentencePiece pieces.
      seed: the first seed of the n draws (see `start`).
      permutation: also permute positions, as ALBERT's `--do_permutation`.

    Raises:
      ValueError: if `max_ngram < 1`.
    """
    super().__init__(sentencepiece)
    if max_ngram < 1:
      raise ValueError("--ngram=%d: expected at least 1" % max_ngram)
    self.max_ngram = max_ngram
    self.favor_shorter_ngram = favor_shorter_ngram
    self.ngrams = np.arange(1, max_ngram + 1, dtype=np.int64)
    pvals = 1.0 / np.arange(1, max_ngram + 1)
    pvals /= pvals.sum(keepdims=True)
    if not favor_shorter_ngram:
      pvals = pvals[::-1]
    # The original renormalizes before every draw; so do we, to the bit.
    self.pvals = pvals / pvals.sum(keepdims=True)
    self.permutation = permutation
    self.predictions_multiplier = 2 if permutation else 1
    # The shuffled candidates of the last selection and its budget, which
    # `after_replacements` takes up again.
    self._candidates = []
    self._num_to_predict = 0
    self.start(seed)

  def start(self, seed):
    self._np_rng = np.random.RandomState(seed)

  def candidate_groups(self, tokens):
    return self.word_groups(tokens)

  def select_groups(self, tokens, num_to_predict, rng):
    words = self.candidate_groups(tokens)
    # ngram_indexes[w][n - 1]: the words of the n-gram starting at word w.
    ngram_indexes = [[words[w:w + n] for n in self.ngrams]
                     for w in range(len(words))]
    rng.shuffle(ngram_indexes)
    self._candidates = ngram_indexes
    self._num_to_predict = num_to_predict
    return self._choose_ngrams(ngram_indexes, num_to_predict, frozenset())

  def _choose_ngrams(self, candidates, num_to_predict, excluded):
    """Yields the n-grams chosen from `candidates`, in turn.

    Args:
      candidates: list, for each word w, of the n-grams `words[w:w+n]`.
      num_to_predict: the most positions chosen.
      excluded: positions no chosen n-gram may hold.

    Yields:
      Lists of positions, disjoint, at most `num_to_predict` in total.
    """
    chosen = set()
    for candidate in candidates:
      if len(chosen) >= num_to_predict:
        break
      n = int(self._np_rng.choice(self.ngrams, p=self.pvals))
      # The drawn n-gram, else the longest shorter one within the budget.
      while True:
        index_set = [i for word in candidate[n - 1] for i in word]
        if len(chosen) + len(index_set) <= num_to_predict or n == 1:
          break
        n -= 1
      if len(chosen) + len(index_set) > num_to_predict:
        continue
      if not (chosen.isdisjoint(index_set) and
              excluded.isdisjoint(index_set)):
        continue
      chosen.update(index_set)
      yield index_set

  def after_replacements(self, tokens, positions, rng):
    """The original's second shuffle of its candidates; the permutation."""
    del tokens
    rng.shuffle(self._candidates)
    if not self.permutation:
      return []
    selected = sorted(
        i for index_set in self._choose_ngrams(
            self._candidates, self._num_to_predict, frozenset(positions))
        for i in index_set)
    sources = list(selected)
    rng.shuffle(sources)
    return list(zip(selected, sources))


MASKING_STRATEGIES = {cls.name: cls for cls in (TokenMasking, WholeWordMasking,
                                                NgramMasking)}


def num_predictions(num_tokens, masked_lm_prob, max_predictions_per_seq):
  """Returns how many positions the original masks in `num_tokens` tokens."""
  return min(max_predictions_per_seq,
             max(1, int(round(num_tokens * masked_lm_prob))))


def mask_groups(tokens, masked_lm_prob, max_predictions_per_seq, vocab_words,
                rng, masking=None):
  """Masks the groups a strategy selects; keeps each position's group.

  The strategy selects the groups (`MaskingStrategy.select`), `rng` draws
  all their replacements at once (`InstanceRandom.replacements`), then the
  strategy makes its draws after them (`after_replacements`): the original's
  order for every strategy. Positions it returns (ALBERT's permutation) take
  the token (after masking) of their source and are predicted too.

  Args:
    tokens: list of token strings of one instance.
    masked_lm_prob: fraction of the tokens to mask.
    max_predictions_per_seq: cap on the number of masked positions.
    vocab_words: list of vocabulary tokens, for random replacements.
    rng: an `InstanceRandom` (or a `random.Random`: the exact draws).
    masking: a `MaskingStrategy`; default `TokenMasking()`.

  Returns:
    (output_tokens, positions, labels, spans): the tokens with the
    replacements applied, the masked positions sorted, their original tokens,
    and (only if `masking.span_boundary_features`, else None) for each of
    them the (first, last) position of its group.
  """
  masking = masking or TokenMasking()
  rng = randomness.batch_draws(rng)
  num_to_predict = num_predictions(len(tokens), masked_lm_prob,
                                   max_predictions_per_seq)
  positions, group_sizes = masking.select(tokens, num_to_predict, rng)
  codes = rng.replacements(group_sizes, len(vocab_words),
                           masking.decide_per_group)
  output_tokens = list(tokens)
  for index, code in zip(positions, codes):
    if code == randomness.REPLACE_MASK:
      output_tokens[index] = MASK
    elif code != randomness.REPLACE_KEEP:
      output_tokens[index] = vocab_words[code]
  moves = masking.after_replacements(tokens, positions, rng)
  if moves:
    masked_tokens = list(output_tokens)
    for index, source in moves:
      output_tokens[index] = masked_tokens[source]
  spans = None
  if masking.span_boundary_features:
    span_of, start = {}, 0
    for size in group_sizes:
      # A group's positions are increasing.
      span = (positions[start], positions[start + size - 1])
      for index in positions[start:start + size]:
        span_of[index] = span
      start += size
  positions.extend(index for index, _ in moves)
  positions.sort()
  if masking.span_boundary_features:
    spans = [span_of[index] for index in positions]
  return output_tokens, positions, [tokens[i] for i in positions], spans


def create_masked_lm_predictions(tokens, masked_lm_prob,
                                 max_predictions_per_seq, vocab_words, rng,
                                 masking=None):
  """Creates the predictions for the masked LM objective.

  Args:
    tokens: list of token strings of one instance.
    masked_lm_prob: fraction of the tokens to mask.
    max_predictions_per_seq: cap on the number of masked positions.
    vocab_words: list of vocabulary tokens, for random replacements.
    rng: a `random.Random`.
    masking: a `MaskingStrategy`; default `TokenMasking()`.

  Returns:
    (output_tokens, masked_lm_positions, masked_lm_labels): the tokens with
    the replacements applied, the sorted masked positions and their original
    tokens.
  """
  output_tokens, positions, labels, _ = mask_groups(
      tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
      masking)
  return output_tokens, positions, labels
