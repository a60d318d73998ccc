"""ALBERT's pretraining data: sentence order, n-gram masking, SentencePiece.

The reference for the random draws is `_albert_reference`, a transcription of
the control flow of google-research/albert's `create_pretraining_data.py`
(`create_instances_from_document` with `--random_next_sentence=False` and
`create_masked_lm_predictions` with `--do_whole_word_mask --ngram`, and
optionally `--do_permutation`), whose n comes from NumPy's global generator,
here seeded with the run's seed.
"""

import collections
import random

import numpy as np
import pytest

from bert_tf import tokenization
from bert_tf.data import pretraining_dataset
from bert_tf.data import pretraining as pi
from bert_tf.data import record_format
import script_runner
from sentencepiece_models import train_albert_spm

SPECIALS = ("[CLS]", "[SEP]")


# ----------------------------------------------------------- the reference --


def _reference_is_start(piece, spm):
  """ALBERT's `is_start_piece`, written out from its definition."""
  if not spm:
    return not piece.startswith("##")
  punctuation = set('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
  letters = set("abcdefghijklmnopqrstuvwxyz")
  if piece[0] in ("\u2581", "<") or piece in punctuation:
    return True
  return any(c.lower() not in letters | punctuation for c in piece)


def _reference_mask(tokens, masked_lm_prob, max_predictions, vocab_words, rng,
                    max_ngram, favor_shorter, spm, permutation=False):
  """ALBERT's n-gram `create_masked_lm_predictions` (and its permutation)."""
  words = []
  for i, token in enumerate(tokens):
    if token in SPECIALS:
      continue
    if words and not _reference_is_start(token, spm):
      words[-1].append(i)
    else:
      words.append([i])
  output = list(tokens)
  budget = min(max_predictions, max(1, int(round(len(tokens) *
                                                 masked_lm_prob))))
  ngrams = np.arange(1, max_ngram + 1, dtype=np.int64)
  pvals = 1. / np.arange(1, max_ngram + 1)
  pvals /= pvals.sum(keepdims=True)
  if not favor_shorter:
    pvals = pvals[::-1]
  candidates = [[words[w:w + n] for n in ngrams] for w in range(len(words))]
  rng.shuffle(candidates)
  masked = []  # (index, label)
  covered = set()
  for candidate in candidates:
    if len(masked) >= budget:
      break
    p = pvals[:len(candidate)] / pvals[:len(candidate)].sum(keepdims=True)
    n = np.random.choice(ngrams[:len(candidate)], p=p)
    indexes = sum(candidate[n - 1], [])
    n -= 1
    while len(masked) + len(indexes) > budget and n > 0:
      indexes = sum(candidate[n - 1], [])
      n -= 1
    if len(masked) + len(indexes) > budget:
      continue
    if any(i in covered for i in indexes):
      continue
    for i in indexes:
      covered.add(i)
      if rng.random() < 0.8:
        replacement = "[MASK]"
      elif rng.random() < 0.5:
        replacement = tokens[i]
      else:
        replacement = vocab_words[rng.randint(0, len(vocab_words) - 1)]
      output[i] = replacement
      masked.append((i, tokens[i]))
  rng.shuffle(candidates)
  if permutation:
    selected = set()
    for candidate in candidates:
      if len(selected) >= budget:
        break
      p = pvals[:len(candidate)] / pvals[:len(candidate)].sum(keepdims=True)
      n = np.random.choice(ngrams[:len(candidate)], p=p)
      indexes = sum(candidate[n - 1], [])
      n -= 1
      while len(selected) + len(indexes) > budget and n > 0:
        indexes = sum(candidate[n - 1], [])
        n -= 1
      if len(selected) + len(indexes) > budget:
        continue
      if any(i in covered or i in selected for i in indexes):
        continue
      selected.update(indexes)
    selected = sorted(selected)
    permuted = list(selected)
    rng.shuffle(permuted)
    before = list(output)
    for source, target in zip(selected, permuted):
      output[source] = before[target]
      masked.append((source, before[source]))
  masked.sort()
  return output, [i for i, _ in masked], [label for _, label in masked]


def _reference_truncate(tokens_a, tokens_b, max_num_tokens, rng):
  while len(tokens_a) + len(tokens_b) > max_num_tokens:
    longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
    if rng.random() < 0.5:
      del longer[0]
    else:
      longer.pop()


def _albert_reference(documents, seed, dupe_factor, max_seq_length,
                      short_seq_prob, masked_lm_prob, max_predictions,
                      vocab_words, max_ngram=3, favor_shorter=True, spm=False,
                      permutation=False):
  """ALBERT's instances (SOP, n-gram masking) as (tokens, segments, ...)."""
  rng = random.Random(seed)
  np.random.seed(seed)
  documents = list(documents)
  rng.shuffle(documents)
  instances = []
  for _ in range(dupe_factor):
    for index, document in enumerate(documents):
      max_num_tokens = max_seq_length - 3
      target = max_num_tokens
      if rng.random() < short_seq_prob:
        target = rng.randint(2, max_num_tokens)
      chunk, length, i = [], 0, 0
      while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
          a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
          tokens_a = sum(chunk[:a_end], [])
          tokens_b = []
          if len(chunk) == 1:
            label = True
            for _ in range(10):
              other = rng.randint(0, len(documents) - 1)
              if other != index:
                break
            other_document = documents[other]
            for sentence in other_document[rng.randint(
                0, len(other_document) - 1):]:
              tokens_b.extend(sentence)
              if len(tokens_b) >= target - len(tokens_a):
                break
            i -= len(chunk) - a_end
          elif rng.random() < 0.5:
            label = True
            tokens_a, tokens_b = sum(chunk[a_end:], []), tokens_a
          else:
            label = False
            tokens_b = sum(chunk[a_end:], [])
          _reference_truncate(tokens_a, tokens_b, max_num_tokens, rng)
          tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
          segments = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
          tokens, positions, labels = _reference_mask(
              tokens, masked_lm_prob, max_predictions, vocab_words, rng,
              max_ngram, favor_shorter, spm, permutation)
          instances.append((tokens, segments, positions, labels, label))
          chunk, length = [], 0
        i += 1
  rng.shuffle(instances)
  return instances


def _instances(documents, seed, dupe_factor, vocab_words, **kwargs):
  """Our instances for the same settings, as tuples like the reference's."""
  masking = pi.NgramMasking(kwargs.pop("max_ngram", 3),
                            kwargs.pop("favor_shorter", True),
                            kwargs.pop("spm", False),
                            permutation=kwargs.pop("permutation", False))
  masking.start(seed)
  options = pi.InstanceOptions(masking=masking,
                               sentence_task=pi.SentenceOrderPrediction(),
                               **kwargs)
  made = pi.create_training_instances(
      [list(d) for d in documents], options, dupe_factor, vocab_words,
      random.Random(seed))
  return [(x.tokens, x.segment_ids, x.masked_lm_positions, x.masked_lm_labels,
           x.is_random_next) for x in made]


# -------------------------------------------------------------- fixtures --


@pytest.fixture(scope="module")
def sample_text(fixtures_dir):
  return fixtures_dir / "pretraining_data" / "sample_text.txt"


@pytest.fixture(scope="module")
def wordpiece(fixtures_dir):
  return tokenization.FullTokenizer(
      str(fixtures_dir / "pretraining_data" / "vocab.txt"), True)


def _documents(path, tokenizer):
  documents = pi.read_documents(
      [str(path)], lambda lines: [tokenizer.tokenize(x) for x in lines])
  assert len(documents) >= 3
  return documents


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory, sample_text):
  """A SentencePiece model trained on sample_text.txt, as ALBERT's are made.

  The pieces "0," and "5," are forced in so that the digit-comma fix has
  work to do.
  """
  return train_albert_spm(sample_text,
                          tmp_path_factory.mktemp("spm") / "albert",
                          extra_symbols=["0,", "5,"])


# ------------------------------------------------------ sentence order ------


def test_sop_swaps_consecutive_parts_hand_checked():
  task = pi.SentenceOrderPrediction()
  chunk = [["a", "b"], ["c"], ["d", "e"]]
  seen = collections.Counter()
  for seed in range(200):
    rng = random.Random(seed)
    a, b, label, unused = task.make_segments(
        [list(s) for s in chunk], [chunk, [["x"]]], 0, 100, rng)
    assert unused == 0
    k = {("a", "b"): 1, ("a", "b", "c"): 2}[tuple(b if label else a)]
    first, second = sum(chunk[:k], []), sum(chunk[k:], [])
    assert (a, b) == ((second, first) if label else (first, second))
    seen[label, k] += 1
  assert set(seen) == {(False, 1), (False, 2), (True, 1), (True, 2)}


def test_sop_single_sentence_takes_b_from_another_document():
  task = pi.SentenceOrderPrediction()
  other = [["x", "y"], ["z"]]
  for seed in range(20):
    a, b, label, unused = task.make_segments(
        [["a", "b"]], [[["a", "b"]], other], 0, 100, random.Random(seed))
    assert (a, label, unused) == (["a", "b"], True, 0)
    assert b in (["x", "y", "z"], ["z"])


@pytest.mark.parametrize("masking_prob", [0.15])
def test_sop_and_ngram_match_albert_draw_for_draw(sample_text, wordpiece,
                                                  masking_prob):
  documents = _documents(sample_text, wordpiece)
  vocab_words = list(wordpiece.vocab)
  settings = dict(max_seq_length=64, short_seq_prob=0.1,
                  masked_lm_prob=masking_prob, max_predictions_per_seq=10)
  ours = _instances(documents, 7, 8, vocab_words, **settings)
  reference = _albert_reference(
      documents, 7, 8, settings["max_seq_length"], settings["short_seq_prob"],
      masking_prob, settings["max_predictions_per_seq"], vocab_words)
  assert len(ours) == len(reference) > 100
  for index, (got, want) in enumerate(zip(ours, reference)):
    assert got == want, index


def test_sentencepiece_instances_match_albert_draw_for_draw(sample_text,
                                                            spm_model):
  tokenizer = tokenization.FullTokenizer(None, True, spm_model_file=spm_model)
  documents = pi.read_documents(
      [str(sample_text)], lambda lines: [tokenizer.tokenize(x) for x in lines],
      is_blank=pi.is_blank_after_preprocessing)
  vocab_words = list(tokenizer.vocab)
  ours = _instances(documents, 2, 6, vocab_words, spm=True,
                    max_seq_length=64, max_predictions_per_seq=10)
  reference = _albert_reference(documents, 2, 6, 64, 0.1, 0.15, 10,
                                vocab_words, spm=True)
  assert len(ours) == len(reference) > 100
  assert ours == reference
  # Words of several pieces were masked as one.
  num_joined = 0
  masking = pi.NgramMasking(sentencepiece=True)
  for tokens, _, positions, labels, _ in ours:
    original = list(tokens)
    for p, t in zip(positions, labels):
      original[p] = t
    masked = set(positions)
    for word in masking.word_groups(original):
      assert masked.issuperset(word) or masked.isdisjoint(word)
      num_joined += len(word) > 1 and word[0] in masked
  assert num_joined > 50


@pytest.mark.parametrize("spm", [False, True])
def test_permutation_matches_albert_draw_for_draw(sample_text, wordpiece,
                                                  spm_model, spm):
  if spm:
    tokenizer = tokenization.FullTokenizer(None, True,
                                           spm_model_file=spm_model)
    documents = pi.read_documents(
        [str(sample_text)],
        lambda lines: [tokenizer.tokenize(x) for x in lines],
        is_blank=pi.is_blank_after_preprocessing)
  else:
    tokenizer = wordpiece
    documents = _documents(sample_text, wordpiece)
  vocab_words = list(tokenizer.vocab)
  ours = _instances(documents, 4, 8, vocab_words, spm=spm, permutation=True,
                    max_seq_length=64, max_predictions_per_seq=10)
  reference = _albert_reference(documents, 4, 8, 64, 0.1, 0.15, 10,
                                vocab_words, spm=spm, permutation=True)
  assert len(ours) == len(reference) > 100
  assert ours == reference
  # Up to twice the predictions; the permuted positions hold the tokens of
  # one another.
  num_permuted = 0
  for tokens, _, positions, labels, _ in ours:
    assert len(positions) <= 20
    assert len(set(positions)) == len(positions)
    kept = [(p, t) for p, t in zip(positions, labels)
            if tokens[p] != "[MASK]"]
    num_permuted += sum(tokens[p] != t for p, t in kept)
  assert num_permuted > 100
  # Without the option: the n-gram masking's instances (the same draws but
  # the permutation's).
  plain = _instances(documents, 4, 8, vocab_words, spm=spm,
                     max_seq_length=64, max_predictions_per_seq=10)
  assert plain == _albert_reference(documents, 4, 8, 64, 0.1, 0.15, 10,
                                    vocab_words, spm=spm)
  assert plain != ours


def test_reversed_ngram_preference_matches_albert(sample_text, wordpiece):
  documents = _documents(sample_text, wordpiece)
  vocab_words = list(wordpiece.vocab)
  ours = _instances(documents, 3, 1, vocab_words, max_ngram=4,
                    favor_shorter=False, max_seq_length=48,
                    max_predictions_per_seq=8)
  reference = _albert_reference(documents, 3, 1, 48, 0.1, 0.15, 8,
                                vocab_words, max_ngram=4, favor_shorter=False)
  assert ours == reference


def test_sop_labels_and_order_on_real_text(sample_text, wordpiece):
  documents = _documents(sample_text, wordpiece)
  streams = [" ".join(t for s in d for t in s) for d in documents]
  labels = []
  num_swapped = 0
  for seed in range(10):
    # Long enough for any chunk of these documents: nothing is truncated.
    instances = _instances(documents, seed, 10, list(wordpiece.vocab),
                           max_seq_length=2048, short_seq_prob=0.95)
    for tokens, segments, positions, masked_labels, label in instances:
      tokens = list(tokens)
      for p, t in zip(positions, masked_labels):
        tokens[p] = t
      split = segments.index(1)
      a = " ".join(tokens[1:split - 1])
      b = " ".join(tokens[split:-1])
      labels.append(label)
      in_order = any(a + " " + b in s for s in streams)
      swapped = any(b + " " + a in s for s in streams)
      if not label:
        assert in_order
      elif swapped:
        num_swapped += 1
      else:
        # A single-sentence chunk: B is from another document.
        assert not any(a in s and b in s for s in streams)
  # Label 1: the swapped half of the multi-sentence chunks, plus every
  # single-sentence chunk (B from another document).
  num_in_order = len(labels) - int(np.sum(labels))
  num_pairs = num_in_order + num_swapped
  assert num_pairs > 200
  assert abs(num_swapped / num_pairs - 0.5) < 4 * 0.5 / np.sqrt(num_pairs)
  assert np.mean(labels) > 0.5


# ------------------------------------------------------ n-gram masking ------


@pytest.mark.parametrize("favor_shorter", [True, False])
def test_ngram_lengths_follow_one_over_n(favor_shorter):
  num_words, draws = 40, 5000
  tokens = ["[CLS]"] + ["w%d" % i for i in range(num_words)] + ["[SEP]"]
  masking = pi.NgramMasking(3, favor_shorter)
  masking.start(0)
  rng = random.Random(0)
  # The first group chosen: a uniformly random start, n drawn with P(n).
  counts = collections.Counter(
      len(next(masking.select_groups(tokens, 10, rng))) for _ in range(draws))
  p_n = np.array([1, 1 / 2, 1 / 3]) / (11 / 6)
  if not favor_shorter:
    p_n = p_n[::-1]
  # An n-gram starting at one of the last n - 1 words is cut short.
  expected = np.zeros(3)
  for n in (1, 2, 3):
    for start in range(num_words):
      expected[min(n, num_words - start) - 1] += p_n[n - 1] / num_words
  got = np.array([counts[n] for n in (1, 2, 3)]) / draws
  sigma = np.sqrt(expected * (1 - expected) / draws)
  assert np.all(np.abs(got - expected) < 4 * sigma), (got, expected)


def test_ngram_masks_whole_words_within_budget(sample_text, wordpiece):
  documents = _documents(sample_text, wordpiece)
  instances = _instances(documents, 11, 5, list(wordpiece.vocab),
                         max_seq_length=128, max_predictions_per_seq=20)
  num_at_budget = 0
  num_multi_word = 0
  masking = pi.NgramMasking()
  for tokens, _, positions, labels, _ in instances:
    original = list(tokens)
    for p, t in zip(positions, labels):
      original[p] = t
    budget = pi.num_predictions(len(tokens), 0.15, 20)
    assert len(positions) <= budget
    num_at_budget += len(positions) == budget
    masked = set(positions)
    words = masking.word_groups(original)
    for word in words:
      assert masked.issuperset(word) or masked.isdisjoint(word), word
    runs = 0
    for previous, word in zip(words, words[1:]):
      runs += word[0] in masked and previous[0] in masked
    num_multi_word += runs > 0
  assert num_at_budget > 0.8 * len(instances)
  assert num_multi_word > 0.5 * len(instances)


def test_sentencepiece_word_starts():
  # ALBERT: a piece continues a word only if it is made of a-z (any case)
  # and punctuation but the apostrophe, "<", "=", ">", and is not "\u2581..."
  # or a lone punctuation character.
  for piece in ["\u2581the", "<unk>", ",", "1990", "s1", "\u00e9t\u00e9",
                "'s", "=", "\u6f22", "\u03c3a"]:
    assert pi.is_sentencepiece_start(piece), piece
  for piece in ["ing", "s", "ab.", "x-y", "QU", "a,b"]:
    assert not pi.is_sentencepiece_start(piece), piece
  masking = pi.WholeWordMasking(sentencepiece=True)
  tokens = ["[CLS]", "\u2581un", "believ", "able", ",", "\u2581x", "[SEP]",
            "s", "\u2581y", "[SEP]"]
  assert masking.candidate_groups(tokens) == [[1, 2, 3], [4], [5, 7], [8]]


# ------------------------------------------------------------- the script --


def run_script(**flags):
  script_runner.run_main("create_pretraining_data",
                         *["--%s=%s" % item for item in flags.items()])


def _albert_flags(sample_text, spm_model, output_file, **overrides):
  flags = dict(input_file=str(sample_text), output_file=str(output_file),
               spm_model_file=spm_model, sentence_task="sop", masking="ngram",
               max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2,
               random_seed=5)
  flags.update(overrides)
  return flags


def test_script_with_sentencepiece_writes_the_model_ids(sample_text, spm_model,
                                                        tmp_path):
  out = tmp_path / "albert.tfrecord"
  run_script(**_albert_flags(sample_text, spm_model, out))
  records = record_format.read_records(str(out))
  assert len(records) > 30
  assert sorted(records[0]) == sorted(record_format.PRETRAINING_FEATURE_NAMES)
  tokenizer = tokenization.FullTokenizer(None, True, spm_model_file=spm_model)
  lines = [l for l in sample_text.read_text().splitlines() if l.strip()]
  line_ids = [" ".join(map(str, tokenizer.convert_tokens_to_ids(
      tokenizer.tokenize(l)))) for l in lines]
  corpus = " | ".join(line_ids)
  cls_id, sep_id = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
  labels = []
  for record in records:
    ids = list(record["input_ids"])
    for p, label, w in zip(record["masked_lm_positions"],
                           record["masked_lm_ids"],
                           record["masked_lm_weights"]):
      if w:
        ids[p] = label
    n = sum(record["input_mask"])
    assert ids[0] == cls_id and ids[n - 1] == sep_id
    # Every sentence's first pieces (after any front truncation) are the
    # model's ids of that text: check the first 3 ids of segment A.
    first = " ".join(map(str, ids[1:4]))
    assert first in corpus
    labels.append(record["next_sentence_labels"][0])
  assert 0 < np.mean(labels) < 1

  # The in-graph tokenizer and line-by-line tokenization: the same records.
  for overrides in (dict(fast_tokenizer=True), dict(tokenizer_cache_size=0)):
    again = tmp_path / "again.tfrecord"
    run_script(**_albert_flags(sample_text, spm_model, again, **overrides))
    assert record_format.read_records(str(again)) == records, overrides


def test_script_do_permutation(sample_text, spm_model, tmp_path):
  """--do_permutation: records of 2 * --max_predictions_per_seq predictions."""
  out = tmp_path / "permuted.tfrecord"
  run_script(**_albert_flags(sample_text, spm_model, out,
                             do_permutation=True))
  records = record_format.read_records(str(out))
  assert len(records) > 30
  assert all(len(r["masked_lm_positions"]) == 20 for r in records)
  assert max(sum(r["masked_lm_weights"]) for r in records) > 10
  plain = tmp_path / "plain.tfrecord"
  run_script(**_albert_flags(sample_text, spm_model, plain))
  plain_records = record_format.read_records(str(plain))
  # (The counts may differ: permutation draws from the instance loop's rng.)
  assert all(len(r["masked_lm_positions"]) == 10 for r in plain_records)
  # The records pretrain with --max_predictions_per_seq doubled.
  batch = next(iter(pretraining_dataset.pretraining_dataset(
      [str(out)], 64, 20, 4, is_training=False)))
  assert batch["masked_lm_positions"].shape == (4, 20)
  with pytest.raises(ValueError, match="--do_permutation applies to "
                     "--masking=ngram only, not --masking=token"):
    run_script(**_albert_flags(sample_text, spm_model, tmp_path / "x",
                               masking="token", do_permutation=True))
  with pytest.raises(ValueError, match="--do_permutation works in the single "
                     "stream only"):
    run_script(**_albert_flags(sample_text, spm_model, tmp_path / "x",
                               do_permutation=True, num_workers=2))


def test_script_is_deterministic_by_seed(sample_text, spm_model, tmp_path):
  run_script(**_albert_flags(sample_text, spm_model, tmp_path / "a"))
  run_script(**_albert_flags(sample_text, spm_model, tmp_path / "b"))
  run_script(**_albert_flags(sample_text, spm_model, tmp_path / "c",
                             random_seed=6))
  a, b, c = (record_format.read_records(str(tmp_path / n)) for n in "abc")
  assert a == b
  assert a != c


def test_script_errors_name_the_flag(sample_text, spm_model, tmp_path):
  with pytest.raises(ValueError, match="--vocab_file or --spm_model_file"):
    run_script(input_file=str(sample_text), output_file=str(tmp_path / "x"))
  with pytest.raises(ValueError, match="--ngram=0"):
    run_script(**_albert_flags(sample_text, spm_model, tmp_path / "x",
                               ngram=0))
  with pytest.raises(ValueError, match="--ngram applies to --masking=ngram "
                     "only, not --masking=token"):
    run_script(**_albert_flags(sample_text, spm_model, tmp_path / "x",
                               masking="token", ngram=2))
  with pytest.raises(ValueError, match="--masking=span works on WordPiece"):
    run_script(**_albert_flags(sample_text, spm_model, tmp_path / "x",
                               masking="span"))
  bad = tmp_path / "bad.model"
  bad.write_bytes(b"not a model")
  with pytest.raises(ValueError, match="bad.model.*not a SentencePiece"):
    run_script(**_albert_flags(sample_text, str(bad), tmp_path / "x"))
  assert not (tmp_path / "x").exists()


def test_dynamic_masking_reads_the_sentencepiece_model(spm_model, tmp_path):
  masking = pretraining_dataset.DynamicMasking.from_spm_model_file(spm_model)
  assert (masking.mask_id, masking.cls_id, masking.sep_id,
          masking.vocab_size) == (4, 2, 3, 400)
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(["a b c d e f g h"] * 20),
      model_prefix=str(tmp_path / "plain"), vocab_size=12, minloglevel=2)
  with pytest.raises(ValueError, match="plain.model has no \\[MASK\\] piece"):
    pretraining_dataset.DynamicMasking.from_spm_model_file(
        str(tmp_path / "plain.model"))
