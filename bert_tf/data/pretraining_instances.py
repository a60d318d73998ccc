"""Pretraining instances: documents -> sentence pairs -> masked LM predictions.

The faithful path reproduces the original `create_pretraining_data.py` call
for call on one `random.Random(random_seed)`: the shuffle of the documents, the
dupe loop, `target_seq_length`, the split point, the random-next decision and
the random document, the front/back truncation, the shuffle of the masking
candidates and the 80/10/10 replacement.

Two interfaces let other schemes plug in without copying that loop:

* `MaskingStrategy` chooses WHICH positions to mask. `select_groups` yields
  groups of positions (one position for `token`, one word for `whole_word`,
  1 to 3 words for ALBERT's `ngram`; words are WordPiece words or, with
  SentencePiece, ALBERT's). `create_masked_lm_predictions` then
  decides WHAT replaces them: 80% `[MASK]`, 10% the original token, 10% a random
  vocabulary word, drawn per token (as the original, also for whole-word
  masking) or once per group when the strategy sets `decide_per_group`
  (SpanBERT). A random replacement draws its word per token either way.
* `SentenceTask` turns a chunk of consecutive sentences of a document into the
  segments of one instance and its label. `nsp` is the original next sentence
  prediction, `sop` ALBERT's sentence order; a task with `num_segments = 1`
  (`none`, SpanBERT's single segment) returns no `tokens_b` and the instance
  becomes `[CLS] A [SEP]`; `none` has no label either.

Registries `MASKING_STRATEGIES` and `SENTENCE_TASKS` map flag values to them.
SpanBERT's `span` masking (`SpanMasking`) selects spans of whole words and
decides per span; its instances keep each masked position's span
(`masked_lm_spans`), which the records carry for the span boundary objective.

`create_pretraining_data(RunOptions)` runs the whole program: flag checks,
vocabulary checks, reading (`read_documents`, with `PieceCachingTokenizer`
tokenizing each distinct word once, same tokens), instances, and the records
(`bert_tf.data.tfrecords`). `num_workers = 1` is the original stream, record
for record, with the whole corpus in memory as the original; `num_workers > 1`
streams (file, part) units through worker processes with their own seeds and
a cheaper random source (`NumpyInstanceRandom`, the same distributions): a
different, reproducible stream whose memory holds one unit at a time. Its
workers make the segments with the same loop (`instance_segments`, on ids)
and build, mask and encode them in batches with NumPy
(`bert_tf.data.instance_batches`, `MaskingStrategy.select_batch`).

The instance functions draw through `InstanceRandom`'s batch operations
(`shuffle`, `shuffled_head`, `coin_flips`, `replacements`): `InstanceRandom`
makes exactly the original's draws, in its order, for every strategy.
"""

from concurrent import futures
import contextlib
import dataclasses
import gc
import itertools
import multiprocessing
import os
import random
import resource
import time

from absl import logging
import numpy as np
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import instance_batches
from bert_tf.data import tfrecords

CLS, SEP, MASK, UNK = "[CLS]", "[SEP]", "[MASK]", "[UNK]"


class TrainingInstance(object):
  """A single training instance (a sentence pair, or one segment)."""

  def __init__(self, tokens, segment_ids, masked_lm_positions, masked_lm_labels,
               is_random_next, masked_lm_spans=None):
    """Holds one instance.

    Args:
      tokens: list of token strings, with `[CLS]`/`[SEP]` and masks applied.
      segment_ids: list of ints (0 for A, 1 for B), same length as `tokens`.
      masked_lm_positions: sorted list of masked positions.
      masked_lm_labels: the original tokens at those positions.
      is_random_next: the sentence task's label (True = 1), or None for a
        task without a label (no `next_sentence_labels` feature is written).
      masked_lm_spans: None, or for each masked position the (first, last)
        positions of the masked span that holds it, for the span boundary
        objective (SpanBERT).
    """
    self.tokens = tokens
    self.segment_ids = segment_ids
    self.masked_lm_positions = masked_lm_positions
    self.masked_lm_labels = masked_lm_labels
    self.is_random_next = is_random_next
    self.masked_lm_spans = masked_lm_spans

  def __str__(self):
    return ("tokens: %s\nsegment_ids: %s\nis_random_next: %s\n"
            "masked_lm_positions: %s\nmasked_lm_labels: %s\n\n" % (
                " ".join(self.tokens), " ".join(map(str, self.segment_ids)),
                self.is_random_next,
                " ".join(map(str, self.masked_lm_positions)),
                " ".join(self.masked_lm_labels)))

  __repr__ = __str__


# Replacement codes of `replacements`: a masked position becomes `[MASK]`,
# keeps its token, or (a code >= 0) becomes that vocabulary word.
REPLACE_MASK, REPLACE_KEEP = -1, -2


class InstanceRandom(random.Random):
  """The exact random source: the original's draws, in the original's order.

  Besides `random.Random`'s methods (which it keeps, so seeded alike the
  stream of choices is the original's), instance making asks it for batch
  operations, which a cheaper source (`NumpyInstanceRandom`) may make
  differently with the same distributions:

  * `randint(a, b)`: `random.Random.randint`'s values, its `_randbelow`
    draw without `randrange`'s argument checks;
  * `shuffle(x)`: the same orders as `random.Random.shuffle`, its
    `_randbelow` draws made inline; `shuffled_head(x, k)`: the first k items
    after `shuffle(x)`;
  * `coin_flips(n)`: n `random() < 0.5`, in turn (`truncate_seq_pair`);
  * `replacements(group_sizes, vocab_size, per_group)`: the 80/10/10
    replacement of masked positions, drawn as the original per token (or, for
    SpanBERT, one decision per group then a random word per token).
  """

  def randint(self, a, b):
    """Returns an int in [a, b], as `random.Random.randint`."""
    n = b - a + 1
    if n <= 0:
      raise ValueError("empty range for randint(%d, %d)" % (a, b))
    # `randrange`'s own draw, without its argument checks.
    return a + self._randbelow(n)

  def shuffle(self, x):
    """Shuffles list `x` in place, as `random.Random.shuffle`."""
    getrandbits = self.getrandbits
    for i in reversed(range(1, len(x))):
      n = i + 1
      k = n.bit_length()
      j = getrandbits(k)  # Rejection sampling, as `_randbelow`.
      while j >= n:
        j = getrandbits(k)
      x[i], x[j] = x[j], x[i]

  def shuffled_head(self, x, k):
    """Shuffles list `x` in place; returns its first `k` items (a list)."""
    self.shuffle(x)
    return x[:k]

  def coin_flips(self, n):
    """Returns n bools, each `random() < 0.5`, drawn in turn."""
    random_ = self.random
    return [random_() < 0.5 for _ in range(n)]

  def replacements(self, group_sizes, vocab_size, per_group):
    """Draws the replacement of each position of the masked groups.

    As the original: `random() < 0.8` masks; else `random() < 0.5` keeps;
    else `randint(0, vocab_size - 1)` picks the word. With `per_group` the
    first two draws are made once per group and the word once per position.

    Args:
      group_sizes: the number of positions of each group, in the order the
        groups were chosen.
      vocab_size: the number of vocabulary words.
      per_group: one decision per group instead of one per position.

    Returns:
      A list with one code per position, group after group: `REPLACE_MASK`,
      `REPLACE_KEEP` or the index of the random word.
    """
    random_, randbelow = self.random, self._randbelow
    codes = []
    append = codes.append
    decision = None
    for size in group_sizes:
      for t in range(size):
        if not t or not per_group:
          if random_() < 0.8:
            decision = REPLACE_MASK
          elif random_() < 0.5:
            decision = REPLACE_KEEP
          else:
            decision = None
        if decision is None:
          append(randbelow(vocab_size))  # `randint(0, vocab_size - 1)`.
        else:
          append(decision)
    return codes


class _ExactDraws(InstanceRandom):
  """`InstanceRandom`'s batch draws on a plain `random.Random` (shared state).

  Lets the instance functions take any `random.Random`, as the original's.
  """

  def __init__(self, rng):  # pylint: disable=super-init-not-called
    self.random, self.getrandbits = rng.random, rng.getrandbits
    self.randint, self.shuffle = rng.randint, rng.shuffle
    # `shuffled_head` and the rest are `InstanceRandom`'s, on these.


def batch_draws(rng):
  """Returns `rng` if it makes batch draws, else its exact `_ExactDraws`."""
  return rng if isinstance(rng, InstanceRandom) else _ExactDraws(rng)


class _DrawBuffer(object):
  """Hands out draws made by NumPy in blocks, as Python lists."""

  def __init__(self, make_block, block_size=1 << 14):
    """Starts empty.

    Args:
      make_block: function from a count m to a NumPy array of m draws.
      block_size: the fewest draws made at once.
    """
    self._make_block = make_block
    self._block_size = block_size
    self._items = []
    self._position = 0

  def take(self, n):
    """Returns the next `n` draws (a list)."""
    end = self._position + n
    if end > len(self._items):
      self._items = self._items[self._position:] + self._make_block(
          max(n, self._block_size)).tolist()
      self._position, end = 0, n
    items = self._items[self._position:end]
    self._position = end
    return items


class NumpyInstanceRandom(InstanceRandom):
  """A cheaper random source with the same distributions (parallel mode).

  Its scalar draws (`random`, `randint`: target lengths, split points, random
  documents, spans) are `random.Random`'s, seeded with `seed`. The batch
  operations come from a NumPy `Generator` seeded from the same seed:
  `shuffle` applies a NumPy permutation; uniforms, coin flips and
  replacement codes are drawn vectorized in blocks and handed out in turn,
  and `shuffled_head` makes only the k swaps of a Fisher-Yates shuffle that
  fix its first k items. Deterministic for a given seed and sequence of
  calls; not the original's stream.
  """

  def __init__(self, seed):
    """Seeds both generators from `seed` (an int or str)."""
    super().__init__(seed)
    generator = np.random.default_rng(
        random.Random("numpy:%s" % (seed,)).getrandbits(128))
    self._generator = generator
    self._uniforms = _DrawBuffer(generator.random)
    self._coins = _DrawBuffer(lambda m: generator.random(m) < 0.5)
    self._vocab_size = None

  @property
  def generator(self):
    """The NumPy `Generator` of the batch draws (for batched instances)."""
    return self._generator

  def shuffle(self, x):
    """Shuffles list `x` in place with a uniform NumPy permutation."""
    if len(x) > 1:
      x[:] = [x[i] for i in self._generator.permutation(len(x)).tolist()]

  def shuffled_head(self, x, k):
    """Returns `k` items of `x` uniformly at random, in random order.

    The first `k` steps of a Fisher-Yates shuffle from the front: `x[:k]`
    then has the distribution of the first `k` items of a uniform
    permutation; `x` is left permuted.
    """
    n = len(x)
    k = min(k, n)
    for i, u in zip(range(k), self._uniforms.take(k)):
      j = i + int(u * (n - i))
      x[i], x[j] = x[j], x[i]
    return x[:k]

  def coin_flips(self, n):
    """Returns n fair bools."""
    return self._coins.take(n)

  def replacements(self, group_sizes, vocab_size, per_group):
    """Draws replacement codes: 80% mask, 10% keep, 10% a uniform word.

    Same arguments, codes and distributions as `InstanceRandom`'s.
    """
    if vocab_size != self._vocab_size:
      generator = self._generator

      def codes(m):
        u = generator.random(m)
        words = generator.integers(0, vocab_size, m)
        return np.where(u < 0.8, REPLACE_MASK,
                        np.where(u < 0.9, REPLACE_KEEP, words))

      self._codes = _DrawBuffer(codes)
      self._words = _DrawBuffer(lambda m: generator.integers(0, vocab_size, m))
      self._vocab_size = vocab_size
    if not per_group:
      return self._codes.take(sum(group_sizes))
    codes = []
    for size, code in zip(group_sizes, self._codes.take(len(group_sizes))):
      if code >= 0:  # A random group: a word for each position.
        codes.append(code)
        codes.extend(self._words.take(size - 1))
      else:
        codes.extend([code] * size)
    return codes


# ------------------------------------------------------------------ masking --


class MaskingStrategy(object):
  """Chooses the groups of positions that the masked LM predicts.

  Subclasses define `candidate_groups`; the default `select_groups` shuffles
  the candidates with `rng` and takes them in order while they fit, as the
  original does. A strategy with its own selection (n-grams, spans) overrides
  `select_groups`. `mask_groups` takes the selection as flat positions and
  group sizes (`select`, which a strategy may make cheaper, as
  `TokenMasking`), draws the replacements of all groups at once and then
  calls `after_replacements`, for a strategy whose original draws after
  the replacements (n-grams).
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

  def after_replacements(self, tokens, rng):
    """Makes the draws the original makes after the replacements (none)."""
    del tokens, rng

  def batch_group_starts(self, tokens):
    """The group starts of a selection `select_whole_groups` can make.

    A strategy whose `select_groups` is the default (shuffle the candidate
    groups, take them greedily) returns where its groups start, so a batch
    is selected at once; others return None and are selected row by row.

    Args:
      tokens: an `instance_batches.TokenMatrix`.

    Returns:
      bool [N, L] (only the candidates count), or None.
    """
    del tokens

  def select_batch(self, tokens, num_to_predict, rng):
    """Selects the positions to mask of a batch of instances.

    The same distribution as `select` on each row; the draws are the
    batch's (`rng.generator`) when `batch_group_starts` gives the groups,
    else `select`'s on each row in turn.

    Args:
      tokens: an `instance_batches.TokenMatrix`.
      num_to_predict: int [N], the positions to mask at most, per row.
      rng: a `NumpyInstanceRandom`.

    Returns:
      int64 [N, L]: for each selected position the first position of its
      group, -1 elsewhere.
    """
    starts = self.batch_group_starts(tokens)
    if starts is None:
      return instance_batches.select_rows(self, tokens, num_to_predict, rng)
    return instance_batches.select_whole_groups(
        starts, tokens.candidates, num_to_predict, rng.generator)


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
  for its permutation option, which is not used here; `after_replacements`),
  so `rng` stays in step.

  The original draws n from NumPy's global generator, never seeded; here it
  comes from a `numpy.random.RandomState` seeded by `start(seed)` (the run's
  `--random_seed`), so a run is reproducible and equals the original run
  after `np.random.seed(random_seed)`.
  """

  name = "ngram"

  def __init__(self, max_ngram=3, favor_shorter_ngram=True,
               sentencepiece=False, seed=12345):
    """Makes the strategy.

    Args:
      max_ngram: the largest n (ALBERT's `--ngram`, at least 1).
      favor_shorter_ngram: P(n) proportional to 1/n if True, to
        1/(max_ngram + 1 - n) if False.
      sentencepiece: the tokens are SentencePiece pieces.
      seed: the first seed of the n draws (see `start`).

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
    covered = set()
    for candidate in ngram_indexes:
      if len(covered) >= num_to_predict:
        break
      n = int(self._np_rng.choice(self.ngrams, p=self.pvals))
      # The drawn n-gram, else the longest shorter one within the budget.
      while True:
        index_set = [i for word in candidate[n - 1] for i in word]
        if len(covered) + len(index_set) <= num_to_predict or n == 1:
          break
        n -= 1
      if len(covered) + len(index_set) > num_to_predict:
        continue
      if not covered.isdisjoint(index_set):
        continue
      covered.update(index_set)
      yield index_set

  def after_replacements(self, tokens, rng):
    """The original's second shuffle of its candidates, one per word."""
    rng.shuffle(self.word_groups(tokens))


MASKING_STRATEGIES = {cls.name: cls for cls in (TokenMasking, WholeWordMasking,
                                                NgramMasking)}


class SpanMasking(MaskingStrategy):
  """SpanBERT's span masking: spans of whole words, one decision per span.

  Until `num_to_predict` tokens are chosen: draw a length L in words from
  the geometric distribution P(L = k) ~ p (1 - p)^(k - 1) truncated to
  1 <= k <= max_span_length and renormalized (p = 0.2, max 10: mean 3.80
  words), draw an anchor uniformly among the tokens that are not `[CLS]` or
  `[SEP]`; if it is not masked yet, the span starts at the start of the
  anchor's word and takes L words, fewer where the segment ends (a span never
  crosses `[CLS]`/`[SEP]`). The last span is cut at the token that fills the
  budget. Overlapping or adjacent spans are merged, as SpanBERT's
  `merge_intervals`; each merged span gets one 80/10/10 decision.

  A word is a token not starting with `##` and the `##` pieces after it; a
  `##` piece right after `[CLS]`/`[SEP]` starts a word.
  """

  name = "span"
  decide_per_group = True
  span_boundary_features = True

  def __init__(self, geometric_p=0.2, max_span_length=10):
    """Sets the span length distribution.

    Args:
      geometric_p: p of the geometric distribution, in (0, 1]
        (--span_geometric_p).
      max_span_length: the longest span, in words, at least 1
        (--span_max_length).

    Raises:
      ValueError: naming the flag, for a value out of range.
    """
    if not 0.0 < geometric_p <= 1.0:
      raise ValueError("--span_geometric_p=%g: expected a value in (0, 1]" %
                       geometric_p)
    if max_span_length < 1:
      raise ValueError("--span_max_length=%d: expected at least 1" %
                       max_span_length)
    self.geometric_p = geometric_p
    self.max_span_length = max_span_length
    weights = [geometric_p * (1.0 - geometric_p) ** (k - 1)
               for k in range(1, max_span_length + 1)]
    total = sum(weights)
    # length_probabilities[k - 1] = P(L = k).
    self.length_probabilities = [w / total for w in weights]
    self._cumulative = []
    running = 0.0
    for probability in self.length_probabilities:
      running += probability
      self._cumulative.append(running)

  def expected_span_length(self):
    """Returns E[L], the mean drawn span length in words."""
    return sum(k * prob
               for k, prob in enumerate(self.length_probabilities, start=1))

  def sample_span_length(self, rng):
    """Draws a span length in words (one `rng.random()`)."""
    u = rng.random()
    for k, bound in enumerate(self._cumulative, start=1):
      if u < bound:
        return k
    return self.max_span_length

  def candidate_groups(self, tokens):
    """Returns the words (lists of positions) between the special tokens."""
    words = []
    for i, token in enumerate(tokens):
      if token in (CLS, SEP):
        continue
      if token.startswith("##") and words and words[-1][-1] == i - 1:
        words[-1].append(i)
      else:
        words.append([i])
    return words

  def sample_spans(self, tokens, num_to_predict, rng):
    """Draws the spans, before merging.

    Args:
      tokens: list of token strings.
      num_to_predict: how many positions to mask (fewer if there are fewer
        candidates).
      rng: a `random.Random`.

    Returns:
      A list of (start, end, num_words) in the order drawn: positions
      [start, end) are masked, `num_words` is the drawn length (the span
      holds fewer words when the segment or the budget ends it).
    """
    words = self.candidate_groups(tokens)
    word_of = {}
    for w, word in enumerate(words):
      for i in word:
        word_of[i] = w
    candidates = sorted(word_of)
    num_to_predict = min(num_to_predict, len(candidates))
    masked = set()
    spans = []
    while len(masked) < num_to_predict:
      num_words = self.sample_span_length(rng)
      anchor = candidates[rng.randint(0, len(candidates) - 1)]
      if anchor in masked:
        continue
      w = word_of[anchor]
      start = end = words[w][0]
      for k in range(num_words):
        # The next word must follow without a special token in between.
        if k and (w + k >= len(words) or words[w + k][0] != end):
          break
        for i in words[w + k]:
          if len(masked) >= num_to_predict:
            break
          masked.add(i)
          end = i + 1
      spans.append((start, end, num_words))
    return spans

  def select_groups(self, tokens, num_to_predict, rng):
    """Yields the merged spans, by position, as lists of positions."""
    merged = []
    for start, end, _ in sorted(self.sample_spans(tokens, num_to_predict,
                                                  rng)):
      if merged and start <= merged[-1][1]:
        merged[-1][1] = max(merged[-1][1], end)
      else:
        merged.append([start, end])
    for start, end in merged:
      yield list(range(start, end))


MASKING_STRATEGIES[SpanMasking.name] = SpanMasking

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
  order for every strategy.

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
  rng = batch_draws(rng)
  num_to_predict = num_predictions(len(tokens), masked_lm_prob,
                                   max_predictions_per_seq)
  positions, group_sizes = masking.select(tokens, num_to_predict, rng)
  codes = rng.replacements(group_sizes, len(vocab_words),
                           masking.decide_per_group)
  masking.after_replacements(tokens, rng)
  output_tokens = list(tokens)
  for index, code in zip(positions, codes):
    if code == REPLACE_MASK:
      output_tokens[index] = MASK
    elif code != REPLACE_KEEP:
      output_tokens[index] = vocab_words[code]
  spans = None
  if masking.span_boundary_features:
    span_of, start = {}, 0
    for size in group_sizes:
      # A group's positions are increasing.
      span = (positions[start], positions[start + size - 1])
      for index in positions[start:start + size]:
        span_of[index] = span
      start += size
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


# ----------------------------------------------------------- sentence tasks --


class SentenceTask(object):
  """Makes the segments of one instance from a chunk of sentences.

  `create_instances_from_document` gathers consecutive sentences of a
  document into a chunk of about `target_seq_length` tokens and asks the task
  for the segments and the label.
  """

  name = None
  num_segments = 2

  def num_special_tokens(self):
    """Returns the number of `[CLS]`/`[SEP]` tokens an instance holds."""
    return 1 + self.num_segments

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    """Splits a chunk into the instance's segments.

    Args:
      chunk: list of sentences (lists of tokens), consecutive in the document.
      all_documents: list of documents (lists of sentences), for tasks that
        draw from another document.
      document_index: index of the chunk's document in `all_documents`.
      target_seq_length: the token budget of the instance.
      rng: a `random.Random`.

    Returns:
      (tokens_a, tokens_b, label, num_unused): new token lists (`tokens_b` is
      None for one-segment tasks), the bool label (None for a task without
      one), and how many sentences at the end of the chunk were not used
      (they start the next chunk).
    """
    raise NotImplementedError


def _split_point(chunk, rng):
  """Returns how many sentences of `chunk` go into segment A (original)."""
  if len(chunk) >= 2:
    return rng.randint(1, len(chunk) - 1)
  return 1


def _concat(sentences):
  return list(itertools.chain.from_iterable(sentences))


def _random_segment(all_documents, document_index, target_b_length, rng):
  """Draws segment B from another document, as the original random next.

  Tries (10 times) to draw a document other than this one, then takes its
  sentences from a random start until `target_b_length` tokens.

  Returns:
    A new list of tokens.
  """
  for _ in range(10):
    random_document_index = rng.randint(0, len(all_documents) - 1)
    if random_document_index != document_index:
      break
  random_document = all_documents[random_document_index]
  random_start = rng.randint(0, len(random_document) - 1)
  tokens_b = []
  for sentence in random_document[random_start:]:
    tokens_b.extend(sentence)
    if len(tokens_b) >= target_b_length:
      break
  return tokens_b


class NextSentencePrediction(SentenceTask):
  """The original NSP: B follows A (label 0) or comes from another document.

  With probability 0.5 (always for a one-sentence chunk) B is drawn from
  another document (label 1).
  """

  name = "nsp"

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    a_end = _split_point(chunk, rng)
    tokens_a = _concat(chunk[:a_end])
    if len(chunk) == 1 or rng.random() < 0.5:
      tokens_b = _random_segment(all_documents, document_index,
                                 target_seq_length - len(tokens_a), rng)
      # The sentences after A were not used: they start the next chunk.
      return tokens_a, tokens_b, True, len(chunk) - a_end
    return tokens_a, _concat(chunk[a_end:]), False, 0


class SentenceOrderPrediction(SentenceTask):
  """ALBERT's sentence order prediction (`--random_next_sentence=False`).

  A and B are consecutive parts of the chunk; with probability 0.5 they are
  swapped (label 1 = swapped, stored as `next_sentence_labels`). A chunk of
  one sentence has no second part: as in the original, B is then drawn from
  another document as in NSP, with label 1. The draws are the original's:
  the split point, then either the random document or one `rng.random()`.
  (ALBERT's `--random_next_sentence=True` is `nsp`, draw for draw.)
  """

  name = "sop"

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    a_end = _split_point(chunk, rng)
    tokens_a = _concat(chunk[:a_end])
    if len(chunk) == 1:
      tokens_b = _random_segment(all_documents, document_index,
                                 target_seq_length - len(tokens_a), rng)
      return tokens_a, tokens_b, True, 0
    tokens_b = _concat(chunk[a_end:])
    if rng.random() < 0.5:
      return tokens_b, tokens_a, True, 0
    return tokens_a, tokens_b, False, 0


SENTENCE_TASKS = {cls.name: cls for cls in (NextSentencePrediction,
                                            SentenceOrderPrediction)}


class NoSentenceTask(SentenceTask):
  """SpanBERT's single segment: the whole chunk, `[CLS] A [SEP]`, no label.

  Its instances carry no `next_sentence_labels` feature, so run_pretraining
  trains no next sentence head on them.
  """

  name = "none"
  num_segments = 1

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    return _concat(chunk), None, None, 0


SENTENCE_TASKS[NoSentenceTask.name] = NoSentenceTask


@dataclasses.dataclass
class InstanceOptions:
  """How instances are made from documents (the original flags and schemes).

  Attributes:
    max_seq_length: tokens per instance, special tokens included.
    max_predictions_per_seq: cap on masked positions per instance.
    masked_lm_prob: fraction of tokens to mask.
    short_seq_prob: probability of a shorter random target length.
    masking: a `MaskingStrategy`.
    sentence_task: a `SentenceTask`.
  """
  max_seq_length: int = 128
  max_predictions_per_seq: int = 20
  masked_lm_prob: float = 0.15
  short_seq_prob: float = 0.1
  masking: MaskingStrategy = dataclasses.field(default_factory=TokenMasking)
  sentence_task: SentenceTask = dataclasses.field(
      default_factory=NextSentencePrediction)


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
  """Truncates the longer segment, at a random end, until both fit (in place).

  Each step removes one token of the longer segment (B on a tie), from the
  front or the back with one `rng.random() < 0.5` each, as the original. The
  order of the steps is known beforehand: the longer segment alone until it
  is the shorter by one, then the two in turn; so the draws are made at once
  (`InstanceRandom.coin_flips`) and counted per segment, and the lists cut
  once.

  Args:
    tokens_a: list of tokens, shortened in place.
    tokens_b: list of tokens (may be empty), shortened in place.
    max_num_tokens: the budget for both together.
    rng: an `InstanceRandom` (or a `random.Random`: the exact draws).
  """
  num_steps = len(tokens_a) + len(tokens_b) - max_num_tokens
  if num_steps <= 0:
    return
  fronts = batch_draws(rng).coin_flips(num_steps)  # True: cut the front.
  if len(tokens_a) > len(tokens_b):
    first, second = tokens_a, tokens_b
    alone = len(tokens_a) - len(tokens_b)
  else:
    first, second = tokens_b, tokens_a
    alone = len(tokens_b) - len(tokens_a) + 1
  # Steps 0 .. alone-1 cut `first`; then `second`, `first`, `second`, ...
  for tokens, steps in ((first, fronts[:alone] + fronts[alone + 1::2]),
                        (second, fronts[alone::2])):
    front = sum(steps)
    del tokens[len(tokens) - (len(steps) - front):]
    del tokens[:front]


def instance_segments(all_documents, document_index, options, rng):
  """Yields the segments of the instances of one document, as the original.

  The original's loop: a target length (shorter with `short_seq_prob`),
  chunks of consecutive sentences up to it, the sentence task's segments and
  label for each chunk, the truncation to the budget. The consumer of each
  instance (its masking) runs before the next one is made, so the draws stay
  in the original's order.

  Args:
    all_documents: list of documents (lists of sentences, lists of tokens:
      strings, or ids for the batched parallel mode).
    document_index: the document to make instances from.
    options: `InstanceOptions`.
    rng: a `random.Random`.

  Yields:
    (tokens_a, tokens_b, label): new lists (`tokens_b` None for a
    one-segment task) that fit `max_seq_length` with the special tokens,
    and the task's label (None for a task without one).
  """
  document = all_documents[document_index]
  task = options.sentence_task
  max_num_tokens = options.max_seq_length - task.num_special_tokens()
  # Mostly fill the sequence; sometimes (short_seq_prob) aim shorter, to
  # resemble fine-tuning inputs. A target, not a hard limit.
  target_seq_length = max_num_tokens
  if rng.random() < options.short_seq_prob:
    target_seq_length = rng.randint(2, max_num_tokens)

  current_chunk = []
  current_length = 0
  i = 0
  while i < len(document):
    current_chunk.append(document[i])
    current_length += len(document[i])
    if i == len(document) - 1 or current_length >= target_seq_length:
      tokens_a, tokens_b, label, num_unused = task.make_segments(
          current_chunk, all_documents, document_index, target_seq_length, rng)
      i -= num_unused
      truncate_seq_pair(tokens_a, tokens_b if tokens_b is not None else [],
                        max_num_tokens, rng)
      yield tokens_a, tokens_b, label
      current_chunk = []
      current_length = 0
    i += 1


def create_instances_from_document(all_documents, document_index, options,
                                   vocab_words, rng):
  """Creates the `TrainingInstance`s of one document.

  Args:
    all_documents: list of documents (lists of sentences, lists of tokens).
    document_index: the document to make instances from.
    options: `InstanceOptions`.
    vocab_words: list of vocabulary tokens (random replacements).
    rng: a `random.Random`.

  Returns:
    A list of `TrainingInstance`s, in document order.
  """
  instances = []
  for tokens_a, tokens_b, label in instance_segments(
      all_documents, document_index, options, rng):
    tokens = [CLS] + tokens_a + [SEP]
    segment_ids = [0] * len(tokens)
    if tokens_b is not None:
      tokens += tokens_b + [SEP]
      segment_ids += [1] * (len(tokens_b) + 1)
    tokens, positions, labels, spans = mask_groups(
        tokens, options.masked_lm_prob, options.max_predictions_per_seq,
        vocab_words, rng, options.masking)
    instances.append(TrainingInstance(tokens, segment_ids, positions,
                                      labels, label, spans))
  return instances


def create_training_instances(all_documents, options, dupe_factor,
                              vocab_words, rng, progress=None):
  """Creates the instances of a corpus as the original does.

  Shuffles the documents, makes `dupe_factor` passes over them (each with
  new random choices) and shuffles all the instances together.

  Args:
    all_documents: list of non-empty documents; shuffled in place.
    options: `InstanceOptions`.
    dupe_factor: number of passes.
    vocab_words: list of vocabulary tokens.
    rng: a `random.Random`.
    progress: optional `Progress`, told of the instances of each document.

  Returns:
    The list of `TrainingInstance`s, shuffled.
  """
  rng.shuffle(all_documents)
  instances = []
  for _ in range(dupe_factor):
    for document_index in range(len(all_documents)):
      made = create_instances_from_document(all_documents, document_index,
                                            options, vocab_words, rng)
      instances.extend(made)
      if progress:
        progress.add(instances=len(made))
  rng.shuffle(instances)
  return instances


# ----------------------------------------------------------- reading text --


def _document_lines(input_files, part, num_parts, is_blank):
  """Yields the stripped lines of each document of `part` (see below)."""
  document_number = 0
  lines = []
  for input_file in input_files:
    try:
      with tf.io.gfile.GFile(input_file, "r") as reader:
        for line in reader:
          line = line.strip()
          if not is_blank(line):
            lines.append(line)
          elif lines:
            if document_number % num_parts == part:
              yield lines
            document_number += 1
            lines = []
    except UnicodeDecodeError as e:
      raise ValueError("input file %s is not UTF-8 text: %s" %
                       (input_file, e)) from e
  if lines and document_number % num_parts == part:
    yield lines


def is_blank_after_preprocessing(line):
  """Whether ALBERT's `preprocess_text` empties a stripped `line`.

  ALBERT reads SentencePiece input through `preprocess_text`, so a line of
  nothing but combining characters separates documents as a blank one does.
  """
  return not line or (not line.isascii() and
                      not tokenization.preprocess_text(line))


def read_documents(input_files, tokenize_lines, part=0, num_parts=1,
                   progress=None, batch_lines=1024, is_blank=None):
  """Reads documents (one sentence a line, blank lines between documents).

  As in the original, a document that is not closed by a blank line goes on
  in the next file, every non-blank (stripped) line is tokenized, lines with
  no token are dropped and so are documents with no sentence.

  Args:
    input_files: list of text files (UTF-8; any path `tf.io.gfile` reads).
    tokenize_lines: function from a list of str to a list of token lists.
    part: keep the documents whose number (in reading order, counting those
      with a non-blank line) % `num_parts` is `part`; the others are skipped
      without tokenization.
    num_parts: number of parts the documents are dealt into.
    progress: optional `Progress`, told of every batch of documents read.
    batch_lines: lines handed to `tokenize_lines` at once (at least; whole
      documents are kept together).
    is_blank: function of a stripped line, True for a document separator;
      default: the empty line (BERT). SentencePiece input (ALBERT) uses
      `is_blank_after_preprocessing`.

  Returns:
    A list of documents, each a list of sentences (lists of token strings).

  Raises:
    ValueError: if a file is not UTF-8.
  """
  documents = []
  batch = []  # Lines of whole documents, not tokenized yet.

  def tokenize_batch():
    batch_tokens = iter(tokenize_lines([line for lines in batch
                                        for line in lines]))
    for lines in batch:
      document = [tokens for tokens in (next(batch_tokens) for _ in lines)
                  if tokens]
      if document:
        documents.append(document)
    if progress:
      progress.add(documents=len(batch))
    batch.clear()

  num_lines = 0
  for lines in _document_lines(input_files, part, num_parts,
                               is_blank or (lambda line: not line)):
    batch.append(lines)
    num_lines += len(lines)
    if num_lines >= batch_lines:
      tokenize_batch()
      num_lines = 0
  if batch:
    tokenize_batch()
  return documents


# ------------------------------------------------------------------ running --


@dataclasses.dataclass
class RunOptions:
  """Everything `create_pretraining_data` needs (the script's flags).

  Attributes:
    input_file: comma-separated list of input files or glob patterns.
    output_file: comma-separated list of output files.
    vocab_file: the WordPiece vocabulary (optional with `spm_model_file`).
    do_lower_case: lower case the input text.
    instance: `InstanceOptions`.
    random_seed: seed of `random.Random`.
    dupe_factor: passes over the documents, each with other random choices.
    num_workers: 1 = the original single stream; N > 1 = N processes, see
      `create_pretraining_data`.
    fast_tokenizer: tokenize with the in-graph `FastBertTokenizer` (same ids).
    tokenizer_cache_size: distinct space-separated pieces whose tokens are
      remembered; 0 tokenizes line by line as the original (same tokens).
    num_logged_examples: how many first instances to log in full.
    progress_interval_secs: seconds between progress lines.
    spm_model_file: a SentencePiece model: tokenize as ALBERT (None: the
      WordPiece `vocab_file`).
  """
  input_file: str
  output_file: str
  vocab_file: str
  do_lower_case: bool = True
  instance: InstanceOptions = dataclasses.field(default_factory=InstanceOptions)
  random_seed: int = 12345
  dupe_factor: int = 10
  num_workers: int = 1
  fast_tokenizer: bool = False
  tokenizer_cache_size: int = 500000
  num_logged_examples: int = 20
  progress_interval_secs: float = 10.0
  spm_model_file: str = None


@dataclasses.dataclass
class RunSummary:
  """What a run made.

  Attributes:
    num_documents: documents read (non-empty).
    num_instances: instances written.
    num_masked_tokens: masked positions over all instances.
    seconds: wall time of the run.
    cpu_seconds: CPU time of the run (user + system), its worker processes
      included.
    output_files: the files written, final names.
  """
  num_documents: int = 0
  num_instances: int = 0
  num_masked_tokens: int = 0
  seconds: float = 0.0
  cpu_seconds: float = 0.0
  output_files: list = dataclasses.field(default_factory=list)


class Progress(object):
  """Counts documents and instances and logs a rate line now and then."""

  def __init__(self, interval_secs, prefix=""):
    """Starts the clock.

    Args:
      interval_secs: seconds between two progress lines.
      prefix: text put before each line (e.g. the worker).
    """
    self.interval_secs = interval_secs
    self.prefix = prefix
    self.documents = 0
    self.instances = 0
    self.start = time.time()
    self._last_log = self.start

  def add(self, documents=0, instances=0):
    """Counts `documents` and `instances` more; logs if the interval passed."""
    self.documents += documents
    self.instances += instances
    now = time.time()
    if now - self._last_log >= self.interval_secs:
      self._last_log = now
      elapsed = max(now - self.start, 1e-9)
      logging.info("%s%d documents (%.1f/s), %d instances (%.1f/s)",
                   self.prefix, self.documents, self.documents / elapsed,
                   self.instances, self.instances / elapsed)


def resolve_input_files(input_file):
  """Expands the `--input_file` comma list of files and glob patterns.

  Args:
    input_file: comma-separated paths or glob patterns.

  Returns:
    The list of files, pattern by pattern in `tf.io.gfile.glob` order.

  Raises:
    ValueError: if a pattern matches nothing or a file is empty.
  """
  input_files = []
  for pattern in (input_file or "").split(","):
    matches = tf.io.gfile.glob(pattern) if pattern else []
    if not matches:
      raise ValueError("--input_file pattern %r matches no file" % pattern)
    input_files.extend(matches)
  for path in input_files:
    if tf.io.gfile.stat(path).length == 0:
      raise ValueError("input file %s is empty: expected text, one sentence "
                       "a line, blank lines between documents" % path)
  return input_files


def load_tokenizer(vocab_file, do_lower_case, spm_model_file=None):
  """Returns a `FullTokenizer`, checking the special tokens instances use.

  Args:
    vocab_file: the WordPiece vocabulary (optional with `spm_model_file`).
    do_lower_case: whether the tokenizer lower cases.
    spm_model_file: a SentencePiece model (ALBERT), or None.

  Returns:
    A `tokenization.FullTokenizer`.

  Raises:
    ValueError: if the vocabulary is missing, empty, or lacks one of
      `[CLS]`, `[SEP]`, `[MASK]`, `[UNK]` (a SentencePiece model: one of the
      first three; its unknown piece is its own).
  """
  if not vocab_file and not spm_model_file:
    raise ValueError("--vocab_file or --spm_model_file is required")
  tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file,
                                         do_lower_case=do_lower_case,
                                         spm_model_file=spm_model_file)
  needed = (CLS, SEP, MASK) if spm_model_file else (CLS, SEP, MASK, UNK)
  missing = [t for t in needed if t not in tokenizer.vocab]
  if missing:
    raise ValueError("%s %s lacks %s: pretraining instances need %s" % (
        "SentencePiece model" if spm_model_file else "vocab file",
        spm_model_file or vocab_file, ", ".join(missing), ", ".join(needed)))
  return tokenizer


class PieceCachingTokenizer(object):
  """Tokenizes lines, each distinct space-separated piece only once.

  `FullTokenizer.tokenize(line)` is the concatenation of `tokenize(piece)`
  over `line.split(" ")`: an ASCII space always separates words and every step
  of the original tokenizer works on single characters or on whitespace-
  separated words. So the pieces' tokens are cached and reused, with
  identical output. The cache is emptied when it would exceed `cache_size`.
  """

  def __init__(self, tokenize_pieces, cache_size):
    """Wraps a tokenizer of pieces.

    Args:
      tokenize_pieces: function from a list of str to a list of token lists.
      cache_size: the most pieces remembered (at least 1).
    """
    self._tokenize_pieces = tokenize_pieces
    self.cache_size = cache_size
    self._cache = {}

  def __call__(self, lines):
    """Returns the list of token lists of `lines` (a list of str)."""
    cache = self._cache
    pieces_per_line = [line.split(" ") for line in lines]
    new = {p for pieces in pieces_per_line for p in pieces if p not in cache}
    if len(cache) + len(new) > self.cache_size:
      cache.clear()
      new = {p for pieces in pieces_per_line for p in pieces}
    new = list(new)
    cache.update(zip(new, self._tokenize_pieces(new)))
    return [[token for piece in pieces for token in cache[piece]]
            for pieces in pieces_per_line]


def _ids_of(token_lists, tokenizer):
  """Returns the ids of the tokens of each list (`tokenizer.vocab`)."""
  vocab = tokenizer.vocab
  return [[vocab[token] for token in tokens] for tokens in token_lists]


def make_line_tokenizer(tokenizer, options, as_ids=False):
  """Returns a function from a list of lines to a list of token lists.

  Args:
    tokenizer: the `FullTokenizer` of `options.vocab_file`.
    options: `RunOptions`. With `fast_tokenizer` the text goes through the
      in-graph `FastBertTokenizer` in batches, whose ids are mapped back to
      tokens. With `tokenizer_cache_size > 0` each distinct space-separated
      piece is tokenized once (`PieceCachingTokenizer`); 0 tokenizes line by
      line as the original. The tokens are the same in every case.
    as_ids: give each token's id (`tokenizer.vocab`) instead of the token;
      the fast tokenizers' ids are kept as they come.

  Returns:
    The function.
  """
  if options.fast_tokenizer:
    # Imported when asked for: loading tensorflow_text's ops takes time.
    from bert_tf import text  # pylint: disable=g-import-not-at-top
    if options.spm_model_file:
      fast = text.FastSentencePieceTokenizer(options.spm_model_file,
                                             options.do_lower_case)

      def tokenize_texts(texts):
        if not texts:
          return []
        # The pieces themselves: an unknown one keeps its text, as in
        # `FullTokenizer.tokenize` (it counts for whole-word boundaries).
        pieces = fast.tokenize_pieces(tf.constant(texts)).to_list()
        pieces = [[p.decode("utf-8") for p in text_pieces]
                  for text_pieces in pieces]
        return _ids_of(pieces, tokenizer) if as_ids else pieces
    else:
      fast = text.FastBertTokenizer(options.vocab_file, options.do_lower_case)
      inv_vocab = tokenizer.inv_vocab

      def tokenize_texts(texts):
        if not texts:
          return []
        # Eager ops: a few large batches do not repay tracing `tokenize`.
        ids = fast.tokenize_ops(tf.constant(texts)).to_list()  # [batch, (tokens)]
        if as_ids:
          return ids
        return [[inv_vocab[i] for i in text_ids] for text_ids in ids]
  else:

    def tokenize_texts(texts):
      tokens = [tokenizer.tokenize(t) for t in texts]
      return _ids_of(tokens, tokenizer) if as_ids else tokens

  if options.tokenizer_cache_size > 0 and (
      tokenizer.sp_model is None or
      _splits_on_spaces(tokenizer.sp_model)):
    return PieceCachingTokenizer(tokenize_texts, options.tokenizer_cache_size)
  return tokenize_texts


def _splits_on_spaces(sp_model):
  """Whether a SentencePiece model tokenizes space-separated words alone.

  True for the default normalization (a dummy "\u2581" in front, extra
  whitespace removed) and pre-splitting on whitespace, as ALBERT's models:
  then the pieces of a line are those of its words, and the cache holds.
  """
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top
  proto = sentencepiece_model_pb2.ModelProto.FromString(
      sp_model.serialized_model_proto())
  return (proto.normalizer_spec.add_dummy_prefix and
          proto.normalizer_spec.remove_extra_whitespaces and
          proto.trainer_spec.split_by_whitespace and
          not proto.trainer_spec.treat_whitespace_as_suffix)


def check_options(options):
  """Checks the flags before any work; warns about a too small prediction cap.

  Raises:
    ValueError: naming the flag and the expected range.
  """
  inst = options.instance
  min_length = inst.sentence_task.num_special_tokens() + 2
  if inst.max_seq_length < min_length:
    raise ValueError("--max_seq_length=%d is too small: %s instances need at "
                     "least %d" % (inst.max_seq_length, inst.sentence_task.name,
                                   min_length))
  if inst.max_predictions_per_seq < 1:
    raise ValueError("--max_predictions_per_seq=%d: expected at least 1" %
                     inst.max_predictions_per_seq)
  if not 0.0 < inst.masked_lm_prob <= 1.0:
    raise ValueError("--masked_lm_prob=%g: expected a value in (0, 1]" %
                     inst.masked_lm_prob)
  if not 0.0 <= inst.short_seq_prob <= 1.0:
    raise ValueError("--short_seq_prob=%g: expected a value in [0, 1]" %
                     inst.short_seq_prob)
  if options.dupe_factor < 1:
    raise ValueError("--dupe_factor=%d: expected at least 1" %
                     options.dupe_factor)
  if options.tokenizer_cache_size < 0:
    raise ValueError("--tokenizer_cache_size=%d: expected 0 (no cache) or "
                     "more" % options.tokenizer_cache_size)
  if options.num_workers < 1:
    raise ValueError("--num_workers=%d: expected at least 1" %
                     options.num_workers)
  if not options.output_file or not all(options.output_file.split(",")):
    raise ValueError("--output_file=%r: expected a comma-separated list of "
                     "files" % options.output_file)
  full = int(round(inst.max_seq_length * inst.masked_lm_prob))
  if inst.max_predictions_per_seq < full:
    logging.warning(
        "--max_predictions_per_seq=%d is smaller than --masked_lm_prob * "
        "--max_seq_length = %d: full-length instances get only %d masked "
        "positions", inst.max_predictions_per_seq, full,
        inst.max_predictions_per_seq)


# Instances encoded at once (`PretrainingRecordEncoder.encode_instances`),
# and made at once in the parallel mode (`InstanceBatcher.make_batch`).
_ENCODE_BATCH_SIZE = 2048


def _log_example(tokens, record):
  """Logs one instance as the original does: tokens, then every feature."""
  logging.info("*** Example ***")
  logging.info("tokens: %s", " ".join(
      tokenization.printable_text(x) for x in tokens))
  features = tf.train.Example.FromString(record).features.feature
  for name in (tfrecords.PRETRAINING_FEATURE_NAMES +
               tfrecords.SPAN_BOUNDARY_FEATURE_NAMES):
    if name in features:
      logging.info("%s: %s", name, " ".join(
          str(x) for x in tfrecords.feature_values(features[name])))


def _write_records(records, tokens_of, num_masked_tokens, writer, options,
                   summary, log_examples):
  """Writes records, counting them into `summary`.

  Args:
    records: list of serialized pretraining examples.
    tokens_of: function from an index of `records` to its tokens (strings),
      for the logged examples.
    num_masked_tokens: the masked positions of the records, in all.
    writer: a `tfrecords.RoundRobinRecordWriter`.
    options: `RunOptions`.
    summary: `RunSummary` to count into.
    log_examples: whether this stream logs its first instances.
  """
  num_logged = (options.num_logged_examples - summary.num_instances
                if log_examples else 0)
  for index, record in enumerate(records):
    writer.write(record)
    if index < num_logged:
      _log_example(tokens_of(index), record)
  summary.num_instances += len(records)
  summary.num_masked_tokens += int(num_masked_tokens)


def _write_instances(instances, writer, encoder, options, summary,
                     log_examples):
  """Writes `TrainingInstance`s (see `_write_records`), in batches.

  Args:
    instances: list of `TrainingInstance`s.
    writer: a `tfrecords.RoundRobinRecordWriter`.
    encoder: a `tfrecords.PretrainingRecordEncoder`.
    options: `RunOptions`.
    summary: `RunSummary` to count into.
    log_examples: whether this stream logs its first instances.
  """
  for start in range(0, len(instances), _ENCODE_BATCH_SIZE):
    batch = instances[start:start + _ENCODE_BATCH_SIZE]
    _write_records(encoder.encode_instances(batch),
                   lambda index, batch=batch: batch[index].tokens,
                   sum(len(i.masked_lm_positions) for i in batch), writer,
                   options, summary, log_examples)


def _record_encoder(tokenizer, options):
  """Returns the `tfrecords.PretrainingRecordEncoder` of a run."""
  return tfrecords.PretrainingRecordEncoder(
      tokenizer.vocab, options.instance.max_seq_length,
      options.instance.max_predictions_per_seq)


def _blank_line_rule(options):
  """The `read_documents` blank-line rule of the run's tokenization."""
  return is_blank_after_preprocessing if options.spm_model_file else None


def _no_instance_error(input_files):
  return ValueError(
      "no document long enough to make an instance in %s: every line is "
      "blank or has no token" % ", ".join(input_files))


def _run_faithful(options, input_files, tokenizer):
  """The original single stream: all documents in memory, one rng."""
  summary = RunSummary()
  progress = Progress(options.progress_interval_secs)
  documents = read_documents(input_files,
                             make_line_tokenizer(tokenizer, options),
                             progress=progress,
                             is_blank=_blank_line_rule(options))
  summary.num_documents = len(documents)
  if not documents:
    raise _no_instance_error(input_files)
  rng = InstanceRandom(options.random_seed)
  options.instance.masking.start(options.random_seed)
  instances = create_training_instances(documents, options.instance,
                                        options.dupe_factor,
                                        list(tokenizer.vocab.keys()), rng,
                                        progress)
  output_files = options.output_file.split(",")
  logging.info("*** Writing to output files ***")
  for output_file in output_files:
    logging.info("  %s", output_file)
  with tfrecords.RoundRobinRecordWriter(output_files) as writer:
    _write_instances(instances, writer, _record_encoder(tokenizer, options),
                     options, summary, log_examples=True)
  summary.output_files = output_files
  return summary


def worker_output_files(output_file, worker_index, num_workers):
  """Returns the shards one worker writes: `<name>-<i>-of-<n>` per output."""
  return ["%s-%05d-of-%05d" % (name, worker_index, num_workers)
          for name in output_file.split(",")]


def plan_worker_units(input_files, num_workers):
  """Deals the input among workers as (file, part, num_parts) units.

  With at least as many files as workers, each file is one unit; otherwise
  each file is cut into `ceil(num_workers / num_files)` parts of documents.
  Units go round-robin to the workers.

  Returns:
    A list, per worker, of lists of (file, part, num_parts).
  """
  num_parts = -(-num_workers // len(input_files))
  units = [(path, part, num_parts) for path in input_files
           for part in range(num_parts)]
  return [units[w::num_workers] for w in range(num_workers)]


def _run_worker(options, tokenizer, worker_index, units, tmp_token):
  """One process of the parallel mode; returns its `RunSummary`.

  Its shards stay under their temporary names: the parent renames them when
  every worker succeeded.
  """
  with _without_cyclic_gc():  # A spawned worker starts with it on.
    return _make_worker_records(options, tokenizer, worker_index, units,
                                tmp_token)


def _make_worker_records(options, tokenizer, worker_index, units, tmp_token):
  """The work of `_run_worker`."""
  logging.set_verbosity(logging.INFO)
  if options.fast_tokenizer:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
  # Instances are made on ids (`InstanceBatcher`).
  tokenize_lines = make_line_tokenizer(tokenizer, options, as_ids=True)
  # Not the original's stream anyway: the cheaper source, same distributions.
  rng = NumpyInstanceRandom("%d:%d" % (options.random_seed, worker_index))
  options.instance.masking.start(
      random.Random("numpy:%d:%d" % (options.random_seed,
                                     worker_index)).getrandbits(32))
  batcher = instance_batches.InstanceBatcher(options.instance,
                                             tokenizer.vocab)
  summary = RunSummary()
  progress = Progress(options.progress_interval_secs, "worker %d/%d: " %
                      (worker_index, options.num_workers))
  output_files = worker_output_files(options.output_file, worker_index,
                                     options.num_workers)
  writer = tfrecords.RoundRobinRecordWriter(output_files, tmp_token)
  encoder = _record_encoder(tokenizer, options)
  try:
    for path, part, num_parts in units:
      documents = read_documents([path], tokenize_lines, part, num_parts,
                                 progress, is_blank=_blank_line_rule(options))
      summary.num_documents += len(documents)
      rng.shuffle(documents)
      for _ in range(options.dupe_factor):
        segments = []
        for document_index in range(len(documents)):
          num_segments = len(segments)
          segments.extend(instance_segments(documents, document_index,
                                            options.instance, rng))
          progress.add(instances=len(segments) - num_segments)
        rng.shuffle(segments)
        for start in range(0, len(segments), _ENCODE_BATCH_SIZE):
          batch = batcher.make_batch(
              segments[start:start + _ENCODE_BATCH_SIZE], rng)
          _write_records(
              encoder.encode_batch(batch),
              lambda index, batch=batch: [
                  batcher.words[i]
                  for i in batch.input_ids[index, :batch.num_tokens[index]]],
              batch.num_predictions.sum(), writer, options, summary,
              log_examples=worker_index == 0)
    writer.close(rename=False)
  except BaseException:
    writer.abort()
    raise
  summary.output_files = output_files
  return summary


def _start_method():
  """Returns "fork" when it is safe, else "spawn".

  Forked workers start at once with TensorFlow already imported, but forking
  a process whose TensorFlow runtime is running (its thread pools exist) can
  hang the children; the script's parent process never runs a TF op before
  the workers start, a library caller may have. Spawned workers start clean
  and import TensorFlow themselves (seconds each).
  """
  if "fork" not in multiprocessing.get_all_start_methods():
    return "spawn"
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
  ctx = context.context_safe()
  # The context object may exist (absl's app.run makes one) uninitialized.
  return "fork" if ctx is None or not getattr(ctx, "_initialized", True) else (
      "spawn")


def _run_parallel(options, input_files, tokenizer):
  """N processes over (file, part) units, each with its own seeded rng."""
  tmp_token = os.getpid()
  plan = plan_worker_units(input_files, options.num_workers)
  all_outputs = [f for w in range(options.num_workers)
                 for f in worker_output_files(options.output_file, w,
                                              options.num_workers)]
  logging.info("*** Writing to output files ***")
  for output_file in all_outputs:
    logging.info("  %s", output_file)
  if options.fast_tokenizer:
    # Loaded once here (no TensorFlow op runs): forked workers inherit
    # tensorflow_text's ops and the Unicode tables.
    from bert_tf.text import unicode_tables  # pylint: disable=g-import-not-at-top
    unicode_tables.get_tables(options.do_lower_case)
  context = multiprocessing.get_context(_start_method())
  try:
    with futures.ProcessPoolExecutor(options.num_workers,
                                     mp_context=context) as pool:
      results = list(pool.map(
          _run_worker, [options] * options.num_workers,
          [tokenizer] * options.num_workers, range(options.num_workers), plan,
          [tmp_token] * options.num_workers))
  except BaseException:
    tfrecords.remove_temporary_files(all_outputs, tmp_token)
    raise
  summary = RunSummary(output_files=all_outputs)
  for result in results:
    summary.num_documents += result.num_documents
    summary.num_instances += result.num_instances
    summary.num_masked_tokens += result.num_masked_tokens
  if not summary.num_instances:
    tfrecords.remove_temporary_files(all_outputs, tmp_token)
    raise _no_instance_error(input_files)
  tfrecords.commit_temporary_files(all_outputs, tmp_token)
  return summary


@contextlib.contextmanager
def _without_cyclic_gc():
  """Pauses Python's cyclic garbage collector (then restores its state).

  Documents, segments and instances are millions of small lists without
  reference cycles, freed by reference counting; each collection of the
  older generations would walk all of them (a third of the time of making
  instances on wikitext2).
  """
  enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if enabled:
      gc.enable()


def _cpu_seconds():
  """Returns the CPU seconds of this process and of its waited-for children."""
  own, children = (resource.getrusage(who) for who in (
      resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def create_pretraining_data(options):
  """Reads text, makes instances and writes the pretraining TFRecords.

  With `num_workers == 1` this is the original program, record for record:
  every document is held in memory, one `random.Random(random_seed)` drives
  all choices, all instances of all passes are shuffled together and written
  round-robin to the output files.

  With `num_workers = N > 1` it streams: N processes share the input as
  (file, part) units (`plan_worker_units`), worker i seeds its own
  `NumpyInstanceRandom("<random_seed>:<i>")` (the same distributions from
  cheaper draws) and writes `<output>-<i>-of-<N>` for
  each output file. Each unit is read, shuffled and made into instances one
  pass at a time, so memory holds one unit's documents and one pass of its
  instances, not the corpus times `dupe_factor`. Random next sentences come
  from the same unit, documents do not run across files, instances are
  shuffled within a pass of a unit. The stream is reproducible for a given
  seed and N but differs from the original's.

  Args:
    options: `RunOptions`.

  Returns:
    A `RunSummary`.

  Raises:
    ValueError: bad flags, inputs or vocabulary (the message names them).
  """
  start, start_cpu = time.time(), _cpu_seconds()
  check_options(options)
  tokenizer = load_tokenizer(options.vocab_file, options.do_lower_case,
                            options.spm_model_file)
  input_files = resolve_input_files(options.input_file)
  logging.info("*** Reading from input files ***")
  for input_file in input_files:
    logging.info("  %s", input_file)
  with _without_cyclic_gc():
    if options.num_workers == 1:
      summary = _run_faithful(options, input_files, tokenizer)
    else:
      summary = _run_parallel(options, input_files, tokenizer)
  summary.seconds = time.time() - start
  summary.cpu_seconds = _cpu_seconds() - start_cpu
  logging.info("Wrote %d total instances", summary.num_instances)
  logging.info(
      "Summary: %d documents, %d instances, %d masked tokens in %.2f s "
      "(%.1f instances/s, %.2f CPU s); output files: %s",
      summary.num_documents, summary.num_instances, summary.num_masked_tokens,
      summary.seconds, summary.num_instances / max(summary.seconds, 1e-9),
      summary.cpu_seconds, ", ".join(summary.output_files))
  return summary
