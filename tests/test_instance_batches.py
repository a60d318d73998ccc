"""Tests of instances made in batches of ids (the parallel mode's path).

The batch path must give instances of the same form and the same masking
distributions as the one-at-a-time path; the selections are checked against
the exact probabilities of the original's shuffle-and-take on small rows, and
on real text for what every instance must satisfy.
"""

import collections
import itertools
import math
import random

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import pretraining as pi
from bert_tf.data.pretraining import batch_selection
from bert_tf.data import record_encoder
from bert_tf.data import record_format


@pytest.fixture(scope="module")
def tokenizer(fixtures_dir):
  return tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "uncased_vocab.txt"), True)


@pytest.fixture(scope="module")
def wikitext_segments(fixtures_dir, tokenizer):
  """Segments (ids) of 3 passes over wikitext2 validation, in a list."""
  options = pi.RunOptions(
      input_file="", output_file="", vocab_file="", num_workers=2)
  documents = pi.read_documents(
      [str(fixtures_dir / "corpora" / "wikitext2_valid.tokens")],
      pi.make_line_tokenizer(tokenizer, options, as_ids=True))
  rng = pi.NumpyInstanceRandom(3)
  return [segment for _ in range(3) for d in range(len(documents))
          for segment in pi.instance_segments(documents, d, pi.InstanceOptions(),
                                              rng)]


def _binomial_bound(count, total, probability, sigmas=5.0):
  """Whether `count` of `total` draws is within `sigmas` of the mean."""
  mean = total * probability
  return abs(count - mean) <= sigmas * math.sqrt(
      total * probability * (1 - probability)) + 1


def test_make_batch_builds_the_instances(tokenizer):
  vocab = tokenizer.vocab
  ids = lambda text: tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
  segments = [(ids("the quick brown fox"), ids("jumps over"), True),
              (ids("hello"), ids("world peace now"), False)]
  batcher = pi.InstanceBatcher(pi.InstanceOptions(), vocab)
  batch = batcher.make_batch(segments, pi.NumpyInstanceRandom(0))
  cls, sep = vocab["[CLS]"], vocab["[SEP]"]
  assert batch.num_tokens.tolist() == [9, 7]
  assert batch.next_sentence_labels.tolist() == [1, 0]
  assert batch.segment_ids[:, :10].tolist() == [
      [0, 0, 0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]]
  # round(9 * 0.15) = 1, round(7 * 0.15) = 1.
  assert batch.num_predictions.tolist() == [1, 1]
  for row, (a, b, _) in enumerate(segments):
    original = [cls] + a + [sep] + b + [sep]
    position = batch.masked_lm_positions[row, 0]
    assert original[position] not in (cls, sep)
    assert batch.masked_lm_ids[row, 0] == original[position]
    unmasked = batch.input_ids[row].tolist()
    unmasked[position] = original[position]
    assert unmasked == original + [0] * (128 - len(original))
  # The records parse with the reader's feature spec.
  encoder = record_encoder.PretrainingRecordEncoder(vocab, 128, 20)
  parsed = tf.io.parse_single_example(
      encoder.encode_batch(batch)[1],
      record_format.pretraining_feature_spec(128, 20))
  assert parsed["input_mask"].numpy().sum() == 7
  assert parsed["next_sentence_labels"].numpy().tolist() == [0]


def test_random_subsets_are_uniform():
  # Candidates 1, 2, 4, 5 of each row; 2 to take: 6 subsets, 1/6 each.
  num_rows = 30000
  candidates = np.zeros((num_rows, 8), bool)
  candidates[:, [1, 2, 4, 5]] = True
  group_first = batch_selection.select_whole_groups(
      candidates, candidates, np.full(num_rows, 2), np.random.default_rng(0))
  subsets = collections.Counter(tuple(np.flatnonzero(row >= 0))
                                for row in group_first)
  assert set(subsets) == set(itertools.combinations([1, 2, 4, 5], 2))
  for count in subsets.values():
    assert _binomial_bound(count, num_rows, 1 / 6)
  # A budget larger than the candidates takes them all.
  all_taken = batch_selection.select_whole_groups(
      candidates[:3], candidates[:3], np.array([4, 7, 100]),
      np.random.default_rng(1))
  assert (all_taken >= 0).sum(axis=1).tolist() == [4, 4, 4]


class _Permutation(object):
  """A stand-in rng whose `shuffle` applies a given permutation."""

  def __init__(self, permutation):
    self.permutation = permutation

  def shuffle(self, x):
    x[:] = [x[i] for i in self.permutation]


def test_whole_word_selection_has_the_original_distribution(tokenizer):
  # Words of 1, 3, 2 and 2 tokens ("##s" after [SEP] continues "is"), 3 to
  # mask: the original's probabilities are those of every order of the words,
  # equally likely, through its greedy take (3/8, 3/8 and 1/4 here).
  tokens = ["[CLS]", "the", "play", "##er", "##s", "is", "[SEP]", "##s", "a",
            "##b", "[SEP]"]
  masking = pi.WholeWordMasking()
  num_words = len(masking.candidate_groups(tokens))
  budget = 3
  exact = collections.Counter()
  for permutation in itertools.permutations(range(num_words)):
    selected = masking.select(tokens, budget, _Permutation(permutation))[0]
    exact[tuple(sorted(selected))] += 1
  num_orders = sum(exact.values())
  num_rows = 24000
  ids = np.array([tokenizer.convert_tokens_to_ids(tokens)] * num_rows)
  batcher = pi.InstanceBatcher(pi.InstanceOptions(masking=masking),
                               tokenizer.vocab)
  matrix = batch_selection.TokenMatrix(
      ids, np.full(num_rows, len(tokens)),
      (ids != tokenizer.vocab["[CLS]"]) & (ids != tokenizer.vocab["[SEP]"]),
      batcher.words, batcher._word_start)  # pylint: disable=protected-access
  group_first = masking.select_batch(matrix, np.full(num_rows, budget),
                                     pi.NumpyInstanceRandom(0))
  got = collections.Counter(tuple(np.flatnonzero(row >= 0))
                            for row in group_first)
  assert set(got) == set(exact) and len(set(exact.values())) == 2
  for subset, count in got.items():
    assert _binomial_bound(count, num_rows, exact[subset] / num_orders), (
        subset, count, exact[subset] / num_orders)
  # Each selected position points at the first position of its word.
  row = group_first[0]
  for word in masking.candidate_groups(tokens):
    assert set(row[word].tolist()) <= {-1, word[0]}


def _masked_words(batch, masking, words, row):
  """The words of one row of a batch, and which of their tokens are masked."""
  n = batch.num_tokens[row]
  original = batch.input_ids[row, :n].copy()
  positions = batch.masked_lm_positions[row, :batch.num_predictions[row]]
  original[positions] = batch.masked_lm_ids[row, :len(positions)]
  masked = set(positions.tolist())
  return [[i in masked for i in group]
          for group in masking.candidate_groups([words[i] for i in original])]


def test_whole_word_batches_mask_whole_words(tokenizer, wikitext_segments):
  masking = pi.WholeWordMasking()
  batcher = pi.InstanceBatcher(pi.InstanceOptions(masking=masking),
                               tokenizer.vocab)
  batch = batcher.make_batch(wikitext_segments[:3000],
                             pi.NumpyInstanceRandom(1))
  num_masked = 0
  for row in range(3000):
    for word in _masked_words(batch, masking, batcher.words, row):
      assert all(word) or not any(word)
      num_masked += all(word)
  assert num_masked > 3000 * 10  # About 19 tokens (16 words) per row.


def test_token_batches_keep_the_counts_and_replacements(tokenizer,
                                                        wikitext_segments):
  options = pi.InstanceOptions()
  batcher = pi.InstanceBatcher(options, tokenizer.vocab)
  batch = batcher.make_batch(wikitext_segments[:4000],
                             pi.NumpyInstanceRandom(2))
  expected = [pi.num_predictions(n, 0.15, 20) for n in batch.num_tokens]
  assert batch.num_predictions.tolist() == expected
  kinds = collections.Counter()
  for row in range(4000):
    for position, label in zip(
        batch.masked_lm_positions[row, :expected[row]],
        batch.masked_lm_ids[row]):
      got = batch.input_ids[row, position]
      kinds["mask" if got == tokenizer.vocab["[MASK]"] else
            "keep" if got == label else "random"] += 1
  total = sum(kinds.values())
  # A random word equals the original once in 30522: within the bounds.
  assert _binomial_bound(kinds["mask"], total, 0.8)
  assert _binomial_bound(kinds["keep"], total, 0.1)
  assert _binomial_bound(kinds["random"], total, 0.1)


def test_span_batches_decide_per_span(tokenizer, wikitext_segments):
  masking = pi.SpanMasking()
  options = pi.InstanceOptions(masking=masking,
                               sentence_task=pi.NoSentenceTask())
  batcher = pi.InstanceBatcher(options, tokenizer.vocab)
  segments = [(a + b, None, None) for a, b, _ in wikitext_segments[:1500]]
  batch = batcher.make_batch(segments, pi.NumpyInstanceRandom(4))
  assert batch.next_sentence_labels is None
  mask_id = tokenizer.vocab["[MASK]"]
  for row in range(1500):
    k = batch.num_predictions[row]
    positions = batch.masked_lm_positions[row, :k]
    left, right = (batch.masked_lm_span_left[row, :k],
                   batch.masked_lm_span_right[row, :k])
    assert (batch.masked_lm_span_offset[row, :k] == positions - left - 1).all()
    masked = set(positions.tolist())
    for first, last in set(zip((left + 1).tolist(), (right - 1).tolist())):
      span = list(range(first, last + 1))
      assert masked.issuperset(span)
      # Overlapping or adjacent spans were merged.
      assert first - 1 not in masked and last + 1 not in masked
      is_mask = [batch.input_ids[row, i] == mask_id for i in span]
      assert all(is_mask) or not any(is_mask)


def test_row_by_row_selection_is_the_strategys(tokenizer, wikitext_segments):
  # n-grams have no batch selection: each row is `select` on its tokens.
  masking = pi.NgramMasking(seed=5)
  batcher = pi.InstanceBatcher(pi.InstanceOptions(masking=masking),
                               tokenizer.vocab)
  batch = batcher.make_batch(wikitext_segments[:50],
                             pi.NumpyInstanceRandom(6))
  masking.start(5)
  rng = pi.NumpyInstanceRandom(6)
  expected = []
  for a, b, _ in wikitext_segments[:50]:
    tokens = [batcher.words[i] for i in
              [batcher.cls_id] + a + [batcher.sep_id] + b + [batcher.sep_id]]
    positions, _ = masking.select(
        tokens, pi.num_predictions(len(tokens), 0.15, 20), rng)
    expected.append(sorted(positions))
  got = [batch.masked_lm_positions[row, :batch.num_predictions[row]].tolist()
         for row in range(50)]
  assert got == expected
