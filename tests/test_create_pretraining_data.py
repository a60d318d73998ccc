"""Tests of create_pretraining_data: records of the original, schemes, modes.

The reference is `pretraining_data/expected.tfrecord`, written by the original
google-research/bert script with the flags of `FLAGS.txt` on `sample_text.txt`
(67 records). The script runs in-process through its absl `main`.
"""

import collections
import logging as std_logging
import os
import random
import subprocess
import sys

from absl import logging
import pytest
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import pretraining as pi
from bert_tf.data import record_encoder
from bert_tf.data import record_format
from bert_tf.data import record_writers
import script_runner

NUM_EXPECTED = 67


@pytest.fixture(scope="module")
def data(fixtures_dir):
  return fixtures_dir / "pretraining_data"


@pytest.fixture(scope="module")
def expected(data):
  return record_format.read_records(str(data / "expected.tfrecord"))


def fixture_flags(data):
  """Parses FLAGS.txt into a dict, with the fixture files' real paths."""
  flags = dict(item[2:].split("=", 1)
               for item in (data / "FLAGS.txt").read_text().split())
  flags["input_file"] = str(data / flags["input_file"])
  flags["vocab_file"] = str(data / flags["vocab_file"])
  return flags


def run_script(**flags):
  """Runs the script's `main` with `flags` (name -> value), as from a shell."""
  script_runner.run_main("create_pretraining_data",
                         *["--%s=%s" % item for item in flags.items()])


def assert_records_equal(actual, expected):
  """Compares every feature of every record, in order."""
  assert len(actual) == len(expected)
  for index, (got, want) in enumerate(zip(actual, expected)):
    assert sorted(got) == sorted(want), index
    for name in want:
      assert got[name] == want[name], "record %d, feature %s" % (index, name)


# --------------------------------------------------------- faithful records --


def test_feature_names_and_lengths(expected):
  assert len(expected) == NUM_EXPECTED
  for record in expected:
    assert sorted(record) == sorted(record_format.PRETRAINING_FEATURE_NAMES)
    assert len(record["input_ids"]) == 128
    assert len(record["masked_lm_weights"]) == 20


def test_records_equal_the_original(data, expected, tmp_path, caplog):
  flags = fixture_flags(data)
  flags["output_file"] = str(tmp_path / "out.tfrecord")
  with caplog.at_level(std_logging.INFO):
    run_script(**flags)
  assert_records_equal(record_format.read_records(flags["output_file"]),
                       expected)
  assert os.listdir(tmp_path) == ["out.tfrecord"]  # No temporary file left.

  # The original logs the first 20 instances: tokens, then every feature.
  messages = [r.getMessage() for r in caplog.records]
  assert messages.count("*** Example ***") == 20
  first = messages.index("*** Example ***")
  vocab = tokenization.load_vocab(flags["vocab_file"])
  inv_vocab = {i: t for t, i in vocab.items()}
  num_tokens = sum(expected[0]["input_mask"])
  assert messages[first + 1] == "tokens: " + " ".join(
      inv_vocab[i] for i in expected[0]["input_ids"][:num_tokens])
  assert messages[first + 2] == "input_ids: " + " ".join(
      str(i) for i in expected[0]["input_ids"])
  assert messages[first + 7] == "masked_lm_weights: " + " ".join(
      str(w) for w in expected[0]["masked_lm_weights"])
  num_masked = int(sum(sum(r["masked_lm_weights"]) for r in expected))
  assert num_masked == 1139
  assert "Wrote 67 total instances" in messages
  summary = [m for m in messages if m.startswith("Summary: ")]
  assert len(summary) == 1
  assert summary[0].startswith(
      "Summary: 3 documents, 67 instances, 1139 masked tokens in ")
  assert summary[0].endswith("output files: " + flags["output_file"])


def test_line_by_line_tokenization_gives_the_same_records(data, expected,
                                                          tmp_path, caplog):
  flags = fixture_flags(data)
  flags["output_file"] = str(tmp_path / "out.tfrecord")
  flags["tokenizer_cache_size"] = 0
  flags["log_examples"] = 3  # Fewer example dumps, the same records.
  with caplog.at_level(std_logging.INFO):
    run_script(**flags)
  assert_records_equal(record_format.read_records(flags["output_file"]),
                       expected)
  messages = [r.getMessage() for r in caplog.records]
  assert messages.count("*** Example ***") == 3


def test_fast_tokenizer_gives_the_same_records(data, expected, tmp_path):
  flags = fixture_flags(data)
  for cache_size in (0, 500000):
    flags["output_file"] = str(tmp_path / ("out%d.tfrecord" % cache_size))
    flags["fast_tokenizer"] = True
    flags["tokenizer_cache_size"] = cache_size
    run_script(**flags)
    assert_records_equal(record_format.read_records(flags["output_file"]),
                         expected)


def test_round_robin_over_output_files(data, expected, tmp_path):
  flags = fixture_flags(data)
  outputs = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")]
  flags["output_file"] = ",".join(outputs)
  run_script(**flags)
  assert_records_equal(record_format.read_records(outputs[0]), expected[0::2])
  assert_records_equal(record_format.read_records(outputs[1]), expected[1::2])


def test_documents_run_across_files_and_globs(data, expected, tmp_path):
  # Split sample_text.txt into three files, once inside a document (no blank
  # line at the cut: the document goes on in the next file, as in the
  # original) and once at a blank line; a glob and a comma list find them.
  lines = (data / "sample_text.txt").read_text(encoding="utf-8").split("\n")
  inside = 5
  assert lines[inside - 1] and lines[inside]
  blank = lines.index("", inside + 1)
  parts = ["\n".join(lines[:inside]) + "\n",
           "\n".join(lines[inside:blank + 1]) + "\n",
           "\n".join(lines[blank + 1:])]
  os.makedirs(tmp_path / "in")
  for i, part in enumerate(parts):
    (tmp_path / "in" / ("part%d.txt" % i)).write_text(part, encoding="utf-8")
  flags = fixture_flags(data)
  flags["input_file"] = "%s,%s" % (tmp_path / "in" / "part0.txt",
                                   tmp_path / "in" / "part[12].txt")
  flags["output_file"] = str(tmp_path / "out.tfrecord")
  run_script(**flags)
  assert_records_equal(record_format.read_records(flags["output_file"]),
                       expected)


# ------------------------------------------------------- whole word masking --


def test_whole_word_masking_hand_checked():
  # Words: "the" [1], "un ##aff ##able" [2, 3, 4], "dog ##s" [5, 6]; 40% of 8
  # tokens rounds to 3 predictions. random.Random(5) shuffles the groups to
  # [1], [2, 3, 4], [5, 6] and then draws 0.742, 0.795, 0.942, 0.740, ...:
  # [1] -> 0.742 < 0.8: [MASK]; [2, 3, 4] would make 4 > 3: skipped whole;
  # 5 -> 0.795: [MASK]; 6 -> 0.942 then 0.740 >= 0.5: a random vocab word.
  rng = random.Random(5)
  groups = [[1], [2, 3, 4], [5, 6]]
  random.Random(5).shuffle(groups)
  assert groups == [[1], [2, 3, 4], [5, 6]]
  tokens = ["[CLS]", "the", "un", "##aff", "##able", "dog", "##s", "[SEP]"]
  output, positions, labels = pi.create_masked_lm_predictions(
      tokens, 0.4, 20, ["a", "b", "c", "d"], rng, pi.WholeWordMasking())
  assert output == ["[CLS]", "[MASK]", "un", "##aff", "##able", "[MASK]", "a",
                    "[SEP]"]
  assert positions == [1, 5, 6]
  assert labels == ["the", "dog", "##s"]


def original_tokens(record):
  """The unmasked input ids of a record: masked positions get their labels."""
  ids = list(record["input_ids"])
  for position, label, weight in zip(record["masked_lm_positions"],
                                     record["masked_lm_ids"],
                                     record["masked_lm_weights"]):
    if weight:
      ids[position] = label
  return ids


def test_whole_word_masking_masks_whole_words(data, tmp_path):
  vocab = tokenization.load_vocab(str(data / "vocab.txt"))
  inv_vocab = {i: t for t, i in vocab.items()}
  flags = fixture_flags(data)
  flags["masking"] = "whole_word"
  flags["output_file"] = str(tmp_path / "wwm.tfrecord")
  run_script(**flags)
  records = record_format.read_records(flags["output_file"])
  del flags["masking"]
  flags["do_whole_word_mask"] = True
  flags["output_file"] = str(tmp_path / "dwwm.tfrecord")
  run_script(**flags)
  assert_records_equal(record_format.read_records(flags["output_file"]),
                       records)

  num_continued_words = 0
  for record in records:
    tokens = [inv_vocab[i] for i in original_tokens(record)]
    masked = {p for p, w in zip(record["masked_lm_positions"],
                                record["masked_lm_weights"]) if w}
    for p in range(1, len(tokens)):
      # A truncated segment may start with a "##" piece: after [CLS] it starts
      # a word of its own, after [SEP] it joins A's last word (original).
      if tokens[p].startswith("##") and tokens[p - 1] not in ("[CLS]",
                                                              "[SEP]"):
        # A piece and the piece before it (same word) are masked together.
        assert (p in masked) == (p - 1 in masked), (tokens, p)
        num_continued_words += p in masked
  assert num_continued_words > 10


def test_masking_flags_that_disagree_fail(data, tmp_path):
  flags = fixture_flags(data)
  flags.update(output_file=str(tmp_path / "o"), do_whole_word_mask=True,
               masking="token")
  with pytest.raises(ValueError, match="--do_whole_word_mask=True contradicts "
                     "--masking=token"):
    run_script(**flags)


# ------------------------------------------------------------ parts, units --


def test_piece_cache_matches_line_by_line(data):
  tokenizer = tokenization.FullTokenizer(str(data / "vocab.txt"), True)
  lines = ["Héllo,  wörld\tagain\u00a0and  again",
           "力加勝北区 text\x00with\u200bcontrols \u3000 wide",
           "", "  spaced   out  ", "UNaffable unaffable!"]
  plain = [tokenizer.tokenize(line) for line in lines]
  for cache_size in (1, 3, 1000):
    cached = pi.PieceCachingTokenizer(
        lambda texts: [tokenizer.tokenize(t) for t in texts], cache_size)
    assert cached(lines) == plain
    assert cached(lines[::-1]) == plain[::-1]


def test_truncate_seq_pair_randomly_cuts_the_longer_at_random_ends():
  # random.Random(1) draws 0.134, 0.847, 0.764, 0.255: A (the longer, 8 vs
  # 3) loses its front, back, back, front until 4 + 3 = 7 tokens remain.
  tokens_a, tokens_b = list("abcdefgh"), list("xyz")
  pi.truncate_seq_pair_randomly(tokens_a, tokens_b, 7, random.Random(1))
  assert tokens_a == list("cdef")
  assert tokens_b == list("xyz")
  # On a tie B is cut (0.134 < 0.5: its front).
  tokens_a, tokens_b = list("ab"), list("xy")
  pi.truncate_seq_pair_randomly(tokens_a, tokens_b, 3, random.Random(1))
  assert (tokens_a, tokens_b) == (list("ab"), list("y"))


def _reference_example(instance, vocab, max_seq_length, max_predictions):
  """Builds the record as the original does, from `tf.train.Feature`s."""
  n, p = len(instance.tokens), len(instance.masked_lm_positions)
  ints = {
      "input_ids": [vocab[t] for t in instance.tokens] + [0] * (
          max_seq_length - n),
      "input_mask": [1] * n + [0] * (max_seq_length - n),
      "segment_ids": instance.segment_ids + [0] * (max_seq_length - n),
      "masked_lm_positions": instance.masked_lm_positions + [0] * (
          max_predictions - p),
      "masked_lm_ids": [vocab[t] for t in instance.masked_lm_labels] + [0] * (
          max_predictions - p),
  }
  if instance.is_random_next is not None:
    ints["next_sentence_labels"] = [1 if instance.is_random_next else 0]
  if instance.masked_lm_spans is not None:
    pad = [0] * (max_predictions - p)
    spans = instance.masked_lm_spans
    ints["masked_lm_span_left"] = [s - 1 for s, _ in spans] + pad
    ints["masked_lm_span_right"] = [e + 1 for _, e in spans] + pad
    ints["masked_lm_span_offset"] = [
        i - s for i, (s, _) in zip(instance.masked_lm_positions, spans)] + pad
  features = {name: record_format.create_int_feature(values)
              for name, values in ints.items()}
  features["masked_lm_weights"] = record_format.create_float_feature(
      [1.0] * p + [0.0] * (max_predictions - p))
  return tf.train.Example(features=tf.train.Features(feature=features))


def _sample_instances(data, dupe_factor, seed):
  """Returns the tokenizer and the faithful instances of sample_text.txt."""
  tokenizer = tokenization.FullTokenizer(str(data / "vocab.txt"), True)
  documents = pi.read_documents(
      [str(data / "sample_text.txt")],
      lambda lines: [tokenizer.tokenize(line) for line in lines])
  return tokenizer, pi.create_training_instances(
      documents, pi.InstanceOptions(), dupe_factor, list(tokenizer.vocab),
      random.Random(seed))


def test_record_encoder_writes_the_original_examples(data):
  tokenizer, instances = _sample_instances(data, 2, 3)
  # Long instances: multi-byte varints for positions and ids.
  instances.append(pi.TrainingInstance(
      ["[CLS]"] + ["##s"] * 300 + ["[SEP]"], [0] * 150 + [1] * 152,
      [130, 299], ["##s", "[SEP]"], True))
  # No next sentence label; span boundary features (SpanBERT).
  instances.append(pi.TrainingInstance(
      ["[CLS]", "the", "##s", "the", "[SEP]"], [0] * 5, [1, 2, 3],
      ["the", "##s", "the"], None, [(1, 2), (1, 2), (3, 3)]))
  for max_seq_length, max_predictions in ((128, 20), (512, 30)):
    encoder = record_encoder.PretrainingRecordEncoder(
        tokenizer.vocab, max_seq_length, max_predictions)
    for instance in instances:
      if len(instance.tokens) > max_seq_length:
        with pytest.raises(ValueError, match="more than max_seq_length=128"):
          encoder.encode(instance)
        continue
      record = encoder.encode(instance)
      assert tf.train.Example.FromString(record) == _reference_example(
          instance, tokenizer.vocab, max_seq_length, max_predictions)
  parsed = tf.io.parse_single_example(
      encoder.encode(instances[-2]),
      record_format.pretraining_feature_spec(512, 30))
  assert parsed["masked_lm_positions"].numpy().tolist()[:3] == [130, 299, 0]
  assert parsed["masked_lm_weights"].numpy().tolist()[:3] == [1.0, 1.0, 0.0]
  parsed = tf.io.parse_single_example(
      encoder.encode(instances[-1]), record_format.pretraining_feature_spec(
          512, 30, record_format.PretrainingTasks(next_sentence=False,
                                              span_boundary=True)))
  assert "next_sentence_labels" not in parsed
  assert parsed["masked_lm_span_right"].numpy().tolist()[:4] == [3, 3, 4, 0]
  encoder = record_encoder.PretrainingRecordEncoder(tokenizer.vocab, 128, 1)
  with pytest.raises(ValueError, match="more than max_predictions_per_seq=1"):
    encoder.encode(instances[0])


def test_record_encoder_batches(data):
  """A batch encodes each row as alone; what lies past the counts is unused."""
  tokenizer, instances = _sample_instances(data, 3, 5)
  # Rows of one, two and three varint bytes per id and position.
  vocab = dict(tokenizer.vocab, big=20000, bigger=3 << 14)
  instances.insert(7, pi.TrainingInstance(
      ["[CLS]"] + ["big"] * 200 + ["bigger", "[SEP]"], [0] * 202 + [1],
      [129, 201], ["big", "bigger"], False))
  encoder = record_encoder.PretrainingRecordEncoder(vocab, 512, 30)
  records = encoder.encode_instances(instances)
  assert records == [encoder.encode(i) for i in instances]
  assert tf.train.Example.FromString(records[7]) == _reference_example(
      instances[7], vocab, 512, 30)
  # encode_batch: the cells past num_tokens / num_predictions are ignored.
  ids = [[tokenizer.vocab[t] for t in i.tokens] for i in instances[:2]]
  width = max(map(len, ids))
  batch = record_encoder.PretrainingBatch(
      input_ids=[row + [99] * (width - len(row)) for row in ids],
      num_tokens=[len(row) for row in ids],
      segment_ids=[i.segment_ids + [7] * (width - len(i.segment_ids))
                   for i in instances[:2]],
      masked_lm_positions=[i.masked_lm_positions[:3] + [5]
                           for i in instances[:2]],
      masked_lm_ids=[[tokenizer.vocab[t] for t in i.masked_lm_labels[:3]] +
                     [5] for i in instances[:2]],
      num_predictions=[3, 3],
      next_sentence_labels=[int(i.is_random_next) for i in instances[:2]])
  cut = [pi.TrainingInstance(i.tokens, i.segment_ids,
                             i.masked_lm_positions[:3],
                             i.masked_lm_labels[:3], i.is_random_next)
         for i in instances[:2]]
  assert encoder.encode_batch(batch) == [encoder.encode(i) for i in cut]
  batch.segment_ids[1][2] = -1
  with pytest.raises(ValueError, match="negative value -1 in feature "
                     "segment_ids"):
    encoder.encode_batch(batch)
  with pytest.raises(ValueError, match="with and without a next sentence"):
    encoder.encode_instances(cut + [pi.TrainingInstance(
        ["[CLS]", "[SEP]"], [0, 0], [], [], None)])


def _truncate_step_by_step(tokens_a, tokens_b, max_num_tokens, rng):
  """The original's loop: one token of the longer segment per step."""
  while len(tokens_a) + len(tokens_b) > max_num_tokens:
    trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
    if rng.random() < 0.5:
      del trunc_tokens[0]
    else:
      trunc_tokens.pop()


def test_truncate_seq_pair_randomly_equals_the_step_by_step_loop():
  lengths = random.Random(0)
  for seed in range(400):
    len_a, len_b = lengths.randint(0, 140), lengths.randint(0, 140)
    max_num_tokens = lengths.randint(max(1, (len_a + len_b) // 3), 130)
    if min(len_a, len_b) == 0:
      max_num_tokens = max(1, min(max_num_tokens, len_a + len_b))
    expected = (list(range(len_a)), list(range(100, 100 + len_b)))
    got = (list(range(len_a)), list(range(100, 100 + len_b)))
    rng_expected, rng_got = random.Random(seed), random.Random(seed)
    _truncate_step_by_step(*expected, max_num_tokens, rng_expected)
    pi.truncate_seq_pair_randomly(*got, max_num_tokens, rng_got)
    assert got == expected, (len_a, len_b, max_num_tokens)
    assert rng_got.random() == rng_expected.random()  # Same draws used.


def test_instance_random_shuffles_as_random():
  for seed in (0, 12345, "12345:1"):
    ours, theirs = pi.InstanceRandom(seed), random.Random(seed)
    for n in (0, 1, 2, 3, 5, 17, 64, 127, 128, 129, 1000):
      x, y = list(range(n)), list(range(n))
      ours.shuffle(x)
      theirs.shuffle(y)
      assert x == y, (seed, n)
      assert ours.random() == theirs.random()
      assert ours.randint(0, n) == theirs.randint(0, n)


def test_plan_worker_units():
  assert pi.plan_worker_units(["f"], 2) == [[("f", 0, 2)], [("f", 1, 2)]]
  assert pi.plan_worker_units(["f", "g", "h"], 2) == [
      [("f", 0, 1), ("h", 0, 1)], [("g", 0, 1)]]
  assert pi.plan_worker_units(["f", "g"], 3) == [
      [("f", 0, 2), ("g", 1, 2)], [("f", 1, 2)], [("g", 0, 2)]]


# ------------------------------------------------------------ parallel mode --


def run_script_process(**flags):
  """Runs the script in a fresh process (as from a shell); returns its log."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
  process = subprocess.run(
      [sys.executable, os.path.join(root, "create_pretraining_data.py")] +
      ["--%s=%s" % item for item in flags.items()],
      env=env, capture_output=True, text=True, check=False)
  assert process.returncode == 0, process.stderr[-3000:]
  return process.stderr


def test_parallel_mode_is_reproducible_and_well_formed(data, tmp_path):
  # A fresh process, as from a shell: the workers are forked.
  flags = fixture_flags(data)
  flags["output_file"] = str(tmp_path / "out.tfrecord")
  flags["num_workers"] = 2
  log = run_script_process(**flags)
  shards = ["out.tfrecord-00000-of-00002", "out.tfrecord-00001-of-00002"]
  assert sorted(os.listdir(tmp_path)) == shards
  assert "Summary: 3 documents, 64 instances, 1038 masked tokens in " in log
  records = [record_format.read_records(str(tmp_path / shard))
             for shard in shards]
  # The stream of seed 12345 with 2 workers (`NumpyInstanceRandom`, instances
  # masked in batches), the same on every run: worker 0 has documents 0 and 2 of sample_text.txt, worker 1
  # document 1.
  assert [len(r) for r in records] == [48, 16]
  assert [sum(sum(x["input_ids"]) for x in r) for r in records] == [
      514670, 222473]
  assert [sum(sum(x["masked_lm_ids"]) for x in r) for r in records] == [
      89910, 35812]
  assert [sum(x["next_sentence_labels"][0] for x in r) for r in records] == [
      34, 3]
  for record in records[0] + records[1]:
    n = sum(record["input_mask"])
    assert record["input_mask"] == [1] * n + [0] * (128 - n)
    assert record["input_ids"][0] == 2 and record["input_ids"][n - 1] == 3
    num_masked = int(sum(record["masked_lm_weights"]))
    assert num_masked == min(20, max(1, int(round(n * 0.15))))
    positions = record["masked_lm_positions"][:num_masked]
    assert positions == sorted(positions) and max(positions) < n


def _masking_statistics(records, mask_id):
  """Counts of masked positions made [MASK], kept, or another word; checks
  that each record masks `num_predictions` of its tokens."""
  counts = collections.Counter()
  for record in records:
    n = sum(record["input_mask"])
    num_masked = int(sum(record["masked_lm_weights"]))
    assert num_masked == pi.num_predictions(n, 0.15, 20)
    for position, label in zip(record["masked_lm_positions"][:num_masked],
                               record["masked_lm_ids"]):
      got = record["input_ids"][position]
      counts["mask" if got == mask_id else "keep" if got == label else
             "random"] += 1
  return counts


def test_parallel_mode_keeps_the_distributions_on_real_text(fixtures_dir,
                                                           tmp_path):
  # wikitext2 validation, 3 passes: the parallel mode's cheaper random source
  # (NumpyInstanceRandom) against the original's stream (the faithful mode).
  flags = dict(input_file=fixtures_dir / "corpora" / "wikitext2_valid.tokens",
               vocab_file=fixtures_dir / "vocab" / "uncased_vocab.txt",
               dupe_factor=3, max_seq_length=128)
  vocab = tokenization.load_vocab(str(flags["vocab_file"]))
  runs = {}
  for name, num_workers in (("faithful", 1), ("parallel", 2),
                            ("parallel_again", 2)):
    (tmp_path / name).mkdir()
    run_script_process(output_file=tmp_path / name / "out.tfrecord",
                       num_workers=num_workers, **flags)
    runs[name] = sorted((tmp_path / name).iterdir())
  # The same seed and number of workers: the same files, byte for byte.
  assert [p.name for p in runs["parallel"]] == [
      p.name for p in runs["parallel_again"]]
  for a, b in zip(runs["parallel"], runs["parallel_again"]):
    assert a.read_bytes() == b.read_bytes()
  records = {name: [r for path in runs[name]
                    for r in record_format.read_records(str(path))]
             for name in ("faithful", "parallel")}
  assert len(records["parallel"]) > 6000
  for name, mode_records in records.items():
    counts = _masking_statistics(mode_records, vocab["[MASK]"])
    total = sum(counts.values())
    assert total > 90000
    # 80% [MASK], 10% kept, 10% a random word (which is the label or
    # [MASK] once in 30522): each within 4 sigma of a binomial.
    for kind, p in (("mask", 0.8), ("keep", 0.1), ("random", 0.1)):
      sigma = (p * (1 - p) / total) ** 0.5
      assert abs(counts[kind] / total - p) < 4 * sigma, (name, kind, counts)
  # The random-next fraction (above 0.5: one-sentence chunks always take a
  # random B) of the two modes, within 4 sigma of their difference.
  fractions, sigma2 = [], 0.0
  for mode_records in records.values():
    labels = [r["next_sentence_labels"][0] for r in mode_records]
    p = sum(labels) / len(labels)
    fractions.append(p)
    sigma2 += p * (1 - p) / len(labels)
  assert fractions[0] > 0.5
  assert abs(fractions[0] - fractions[1]) < 4 * sigma2 ** 0.5, fractions


# --------------------------------------------------------------- bad input --


def bad_run(data, tmp_path, **overrides):
  """Runs with the fixture flags and `overrides`; returns the ValueError."""
  flags = fixture_flags(data)
  flags["output_file"] = str(tmp_path / "out.tfrecord")
  flags.update(overrides)
  with pytest.raises(ValueError) as error:
    run_script(**flags)
  assert not os.path.exists(flags["output_file"])
  assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]
  return str(error.value)


def test_missing_and_empty_vocab(data, tmp_path):
  missing = str(tmp_path / "nope.txt")
  assert "nope.txt" in bad_run(data, tmp_path, vocab_file=missing)
  assert "does not exist" in bad_run(data, tmp_path, vocab_file=missing)
  empty = tmp_path / "empty_vocab.txt"
  empty.write_text("")
  message = bad_run(data, tmp_path, vocab_file=str(empty))
  assert "empty_vocab.txt" in message and "empty" in message


@pytest.mark.parametrize("special", ["[CLS]", "[SEP]", "[MASK]", "[UNK]"])
def test_vocab_without_a_special_token(data, tmp_path, special):
  vocab = (data / "vocab.txt").read_text(encoding="utf-8").split("\n")
  assert special in vocab
  path = tmp_path / "vocab.txt"
  path.write_text("\n".join(t for t in vocab if t != special),
                  encoding="utf-8")
  message = bad_run(data, tmp_path, vocab_file=str(path))
  assert str(path) in message and special in message


def test_input_pattern_matching_nothing(data, tmp_path):
  pattern = str(tmp_path / "no_such_*.txt")
  message = bad_run(data, tmp_path, input_file="%s,%s" % (
      data / "sample_text.txt", pattern))
  assert message == "--input_file pattern %r matches no file" % pattern


def test_empty_input_file(data, tmp_path):
  path = tmp_path / "empty.txt"
  path.write_text("")
  message = bad_run(data, tmp_path, input_file=str(path))
  assert message.startswith("input file %s is empty" % path)


def test_no_document_makes_an_instance(data, tmp_path):
  path = tmp_path / "blank.txt"
  path.write_text("\n   \n\t\n\x00\x01\n\n")
  message = bad_run(data, tmp_path, input_file=str(path))
  assert message.startswith("no document long enough to make an instance "
                            "in %s" % path)


@pytest.mark.slow
def test_no_document_makes_an_instance_in_parallel(data, tmp_path):
  # Spawned workers here (this process runs TF ops): tens of seconds.
  path = tmp_path / "blank.txt"
  path.write_text("\n   \n\t\n\x00\x01\n\n")
  message = bad_run(data, tmp_path, input_file=str(path), num_workers=2)
  assert message.startswith("no document long enough to make an instance "
                            "in %s" % path)


def test_too_short_max_seq_length(data, tmp_path):
  message = bad_run(data, tmp_path, max_seq_length=4)
  assert message == ("--max_seq_length=4 is too small: nsp instances need at "
                     "least 5")


def test_small_max_predictions_per_seq_warns_once(data, tmp_path, caplog):
  flags = fixture_flags(data)
  flags["output_file"] = str(tmp_path / "out.tfrecord")
  flags["max_predictions_per_seq"] = 5
  with caplog.at_level(std_logging.WARNING):
    run_script(**flags)
  warnings = [r.getMessage() for r in caplog.records
              if r.levelno == std_logging.WARNING]
  # round(128 * 0.15) = 19 predictions wanted for a full-length instance.
  assert warnings == [
      "--max_predictions_per_seq=5 is smaller than --masked_lm_prob * "
      "--max_seq_length = 19: full-length instances get only 5 masked "
      "positions"]
  records = record_format.read_records(flags["output_file"])
  assert max(sum(r["masked_lm_weights"]) for r in records) == 5


def test_writer_failure_leaves_nothing_under_the_final_name(tmp_path):
  final = str(tmp_path / "out.tfrecord")
  with pytest.raises(RuntimeError):
    with record_writers.RoundRobinRecordWriter([final]) as writer:
      writer.write(b"record")
      assert os.listdir(tmp_path) == ["out.tfrecord.tmp-%d" % os.getpid()]
      raise RuntimeError("stop")
  assert os.listdir(tmp_path) == []


def test_progress_lines(data, tmp_path, caplog):
  options = pi.RunOptions(
      input_file=str(data / "sample_text.txt"),
      output_file=str(tmp_path / "out.tfrecord"),
      vocab_file=str(data / "vocab.txt"), dupe_factor=5,
      num_logged_examples=0, progress_interval_secs=0.0)
  logging.set_verbosity(logging.INFO)
  with caplog.at_level(std_logging.INFO):
    summary = pi.create_pretraining_data(options)
  assert (summary.num_documents, summary.num_instances,
          summary.num_masked_tokens) == (3, 67, 1139)
  assert summary.output_files == [options.output_file]
  progress = [r.getMessage() for r in caplog.records
              if " documents (" in r.getMessage()]
  # One line after reading (3 documents), one per document of each pass.
  assert len(progress) == 1 + 3 * 5
  assert progress[0].startswith("3 documents (")
  assert progress[0].endswith(", 0 instances (0.0/s)")
  assert progress[-1].startswith("3 documents (")
  assert ", 67 instances (" in progress[-1]


# ------------------------------------------------- the pluggable interfaces --


class _PerWordDecision(pi.WholeWordMasking):
  """Whole words with one 80/10/10 decision per word (as SpanBERT's spans)."""

  name = "test_per_word"
  decide_per_group = True


def test_a_strategy_can_decide_once_per_group():
  tokens = ["[CLS]"] + ["w%d" % i if i % 3 else "##p%d" % i
                        for i in range(1, 40)] + ["[SEP]"]
  strategy = _PerWordDecision()
  groups = strategy.candidate_groups(tokens)
  kinds_seen = set()
  for seed in range(40):
    output, positions, labels = pi.create_masked_lm_predictions(
        tokens, 0.3, 20, ["x", "y"], random.Random(seed), strategy)
    assert [tokens[p] for p in positions] == labels
    for group in groups:
      if group[0] not in positions:
        assert all(p not in positions for p in group)
        continue
      kinds = {"mask" if output[p] == "[MASK]" else
               "keep" if output[p] == tokens[p] else "random" for p in group}
      assert len(kinds) == 1, (seed, group, [output[p] for p in group])
      kinds_seen |= kinds
  assert kinds_seen == {"mask", "keep", "random"}


class _SingleSegment(pi.SentenceTask):
  """One segment, no label: the shape of a later `none` task."""

  name = "test_single"
  num_segments = 1

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    return [t for sentence in chunk for t in sentence], None, False, 0


def test_a_single_segment_task_makes_cls_a_sep():
  document = [["a%d" % i for i in range(6)], ["b%d" % i for i in range(5)],
              ["c%d" % i for i in range(4)]]
  options = pi.InstanceOptions(max_seq_length=12, short_seq_prob=0.0,
                               masked_lm_prob=0.1,
                               sentence_task=_SingleSegment())
  instances = pi.create_instances_from_document(
      [document], 0, options, ["z"], random.Random(3))
  # Budget 12 - 2 = 10: chunk [a, b] (11 tokens, reaches the target; cut to
  # 10) then [c] (the last sentence, 4 tokens).
  assert len(instances) == 2
  for instance in instances:
    assert instance.tokens[0] == "[CLS]" and instance.tokens[-1] == "[SEP]"
    assert "[SEP]" not in instance.tokens[1:-1]
    assert instance.segment_ids == [0] * len(instance.tokens)
    assert len(instance.masked_lm_positions) == 1
  assert len(instances[0].tokens) == 12 and len(instances[1].tokens) == 6
  assert instances[1].masked_lm_labels[0] in ("c0", "c1", "c2", "c3")
