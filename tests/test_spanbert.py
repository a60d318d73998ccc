"""SpanBERT: span masking, single segments, the span boundary objective.

Span statistics are measured on real text (WikiText-2 validation with the
uncased BERT vocabulary); the head is checked against numpy on small inputs;
the records and a few pretraining steps go through the real scripts.
"""

import fractions
import math
import os
import pathlib
import random
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import tokenization
from bert_tf.data import pretraining_dataset
from bert_tf.data import pretraining as pi
from bert_tf.data import record_format
from bert_tf.modeling import BertConfig, BertPretrainer
from bert_tf.modeling import heads
from bert_tf.tasks import pretraining
from bert_tf.training import metrics
import script_runner

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"


def exact_mean_span_length(p, max_length):
  """E[L] of P(L = k) ~ p (1 - p)^(k - 1), 1 <= k <= max_length, in fractions."""
  p = fractions.Fraction(p).limit_denominator(1000)
  weights = [p * (1 - p) ** (k - 1) for k in range(1, max_length + 1)]
  return sum(k * w for k, w in enumerate(weights, start=1)) / sum(weights)


# ----------------------------------------------------------- distribution --


def test_span_lengths_follow_the_truncated_geometric():
  masking = pi.SpanMasking(0.2, 10)
  # P(L = 1) = 0.2 / (1 - 0.8^10), then each length 0.8 times the previous.
  assert masking.length_probabilities[0] == pytest.approx(
      0.2 / (1 - 0.8 ** 10), abs=1e-12)
  ratios = np.array(masking.length_probabilities[1:]) / np.array(
      masking.length_probabilities[:-1])
  np.testing.assert_allclose(ratios, 0.8, atol=1e-12)
  # The paper's mean of 3.8 words is the renormalized truncation's (33099485 /
  # 8717049 = 3.797); clipping (min(L, 10)) would give 4.46.
  expected = exact_mean_span_length(0.2, 10)
  assert expected == fractions.Fraction(33099485, 8717049)
  assert masking.expected_span_length() == pytest.approx(float(expected),
                                                         abs=1e-12)
  rng = random.Random(0)
  draws = np.array([masking.sample_span_length(rng) for _ in range(20000)])
  assert draws.min() == 1 and draws.max() == 10
  std = math.sqrt(sum((k - float(expected)) ** 2 * prob for k, prob in
                      enumerate(masking.length_probabilities, start=1)))
  assert abs(draws.mean() - float(expected)) < 4 * std / math.sqrt(len(draws))
  counts = np.bincount(draws, minlength=11)[1:] / len(draws)
  np.testing.assert_allclose(counts, masking.length_probabilities, atol=0.01)


def test_span_masking_flags_are_checked(tmp_path):
  with pytest.raises(ValueError, match=r"--span_geometric_p=0: expected a "
                     r"value in \(0, 1\]"):
    pi.SpanMasking(0.0, 10)
  with pytest.raises(ValueError, match="--span_max_length=0: expected at "
                     "least 1"):
    pi.SpanMasking(0.2, 0)
  text = tmp_path / "text.txt"
  text.write_text("a b c\n")
  with pytest.raises(ValueError, match="--span_max_length applies to "
                     "--masking=span only, not --masking=whole_word"):
    script_runner.run_main(
        "create_pretraining_data", "--input_file=%s" % text,
        "--output_file=%s" % (tmp_path / "out"),
        "--vocab_file=%s" % (ROOT.parent / "shared/fixtures/vocab/"
                             "uncased_vocab.txt"),
        "--do_whole_word_mask", "--span_max_length=5")


def test_spans_stop_at_special_tokens_and_at_the_budget():
  tokens = [CLS, "a", "##b", "c", "d", SEP, "##e", "f", "g", SEP]
  masking = pi.SpanMasking(0.2, 10)
  assert masking.candidate_groups(tokens) == [[1, 2], [3], [4], [6], [7],
                                              [8]]
  for seed in range(200):
    spans = masking.sample_spans(tokens, 4, random.Random(seed))
    masked = set()
    for start, end, _ in spans:
      masked.update(range(start, end))
      assert start in (1, 3, 4, 6, 7, 8)  # word starts
      assert SEP not in tokens[start:end]  # never across [SEP]
    assert len(masked) == 4
  # More to predict than there are candidates: every candidate, once.
  spans = masking.sample_spans(tokens, 20, random.Random(1))
  assert sorted({i for s, e, _ in spans for i in range(s, e)}) == [
      1, 2, 3, 4, 6, 7, 8]


# ----------------------------------------------------------- real text --


@pytest.fixture(scope="module")
def wikitext(fixtures_dir):
  """Documents of WikiText-2 validation, tokenized with the uncased vocab."""
  tokenizer = tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "uncased_vocab.txt"), do_lower_case=True)
  tokenize = pi.PieceCachingTokenizer(
      lambda texts: [tokenizer.tokenize(t) for t in texts], 100000)
  documents = pi.read_documents(
      [str(fixtures_dir / "corpora" / "wikitext2_valid.tokens")], tokenize)
  return documents, list(tokenizer.vocab.keys())


@pytest.fixture(scope="module")
def span_instances(wikitext):
  """(document, instance) pairs of span masking with single segments."""
  documents, vocab_words = wikitext
  options = pi.InstanceOptions(
      max_seq_length=128, max_predictions_per_seq=20, masked_lm_prob=0.15,
      masking=pi.SpanMasking(0.2, 10), sentence_task=pi.NoSentenceTask())
  rng = random.Random(12345)
  pairs = []
  for index, document in enumerate(documents):
    for instance in pi.create_instances_from_document(
        documents, index, options, vocab_words, rng):
      pairs.append((document, instance))
  return pairs


def original_tokens(instance):
  tokens = list(instance.tokens)
  for position, label in zip(instance.masked_lm_positions,
                             instance.masked_lm_labels):
    tokens[position] = label
  return tokens


def is_word_start(tokens, i):
  return not tokens[i].startswith("##") or tokens[i - 1] in (CLS, SEP)


def test_real_text_instances_are_single_contiguous_segments(span_instances):
  assert len(span_instances) > 1000
  for document, instance in span_instances:
    tokens = original_tokens(instance)
    assert tokens[0] == CLS and tokens[-1] == SEP
    assert CLS not in tokens[1:-1] and SEP not in tokens[1:-1]
    assert instance.segment_ids == [0] * len(tokens)
    assert instance.is_random_next is None
    text = " ".join(t for sentence in document for t in sentence)
    assert " ".join(tokens[1:-1]) in text


def test_real_text_masks_fifteen_percent_in_whole_word_spans(span_instances):
  num_masked = num_tokens = 0
  for _, instance in span_instances:
    n = len(instance.tokens)
    positions = instance.masked_lm_positions
    # The budget is filled exactly: the original count, capped at 20.
    assert len(positions) == min(20, max(1, round(n * 0.15)), n - 2)
    assert positions == sorted(set(positions))
    num_masked += len(positions)
    num_tokens += n
  assert 0.145 < num_masked / num_tokens < 0.155


def _runs(positions):
  """Maximal runs of consecutive positions, as (first, last)."""
  runs = []
  for p in positions:
    if runs and p == runs[-1][1] + 1:
      runs[-1][1] = p
    else:
      runs.append([p, p])
  return [tuple(r) for r in runs]


def test_real_text_spans_start_and_end_at_word_boundaries(span_instances):
  num_cut = 0
  for _, instance in span_instances:
    tokens = original_tokens(instance)
    runs = _runs(instance.masked_lm_positions)
    # Each masked position knows its span: the merged run that holds it.
    for position, span in zip(instance.masked_lm_positions,
                              instance.masked_lm_spans):
      assert any(span == run and run[0] <= position <= run[1]
                 for run in runs)
    cut = 0
    for first, last in runs:
      assert is_word_start(tokens, first), (tokens[first - 1:last + 2])
      if not is_word_start(tokens, last + 1) and tokens[last + 1] != SEP:
        cut += 1  # the budget stopped inside a word
    assert cut <= 1
    num_cut += cut
  assert num_cut > 0  # it does happen on real text


def test_real_text_one_decision_per_span(span_instances):
  decisions = {"mask": 0, "keep": 0, "random": 0}
  for _, instance in span_instances:
    tokens = original_tokens(instance)
    for first, last in _runs(instance.masked_lm_positions):
      kinds = {"mask" if instance.tokens[i] == MASK else
               "keep" if instance.tokens[i] == tokens[i] else "random"
               for i in range(first, last + 1)}
      assert len(kinds) == 1, [(tokens[i], instance.tokens[i])
                               for i in range(first, last + 1)]
      decisions[kinds.pop()] += 1
  total = sum(decisions.values())
  assert 0.77 < decisions["mask"] / total < 0.83
  assert 0.08 < decisions["keep"] / total < 0.12
  assert 0.08 < decisions["random"] / total < 0.12


def test_real_text_span_lengths_average_the_expectation(span_instances):
  """The drawn lengths have the paper's mean; a span holds what was drawn."""
  masking = pi.SpanMasking(0.2, 10)
  rng = random.Random(7)
  drawn = []
  for _, instance in span_instances:
    tokens = original_tokens(instance)
    num_to_predict = len(instance.masked_lm_positions)
    words = masking.candidate_groups(tokens)
    starts = {word[0]: w for w, word in enumerate(words)}
    spans = masking.sample_spans(tokens, num_to_predict, rng)
    for k, (start, end, num_words) in enumerate(spans):
      drawn.append(num_words)
      w = starts[start]
      taken = [word for word in words[w:w + num_words] if word[0] < end]
      last_span = k == len(spans) - 1
      segment_ended = w + len(taken) == len(words)
      if not last_span and not segment_ended:
        # Cut neither by the budget nor by the end of the segment.
        assert len(taken) == num_words and end == taken[-1][-1] + 1
  expected = float(exact_mean_span_length(0.2, 10))
  std = 2.5542  # of the truncated geometric, p = 0.2, max 10
  assert len(drawn) > 5000
  assert abs(np.mean(drawn) - expected) < 4 * std / math.sqrt(len(drawn))
  assert abs(np.mean(drawn) - 3.8) < 0.1


# --------------------------------------------------------------- records --


def _small_corpus(fixtures_dir, tmp_path, num_lines=400):
  lines = (fixtures_dir / "corpora" / "wikitext2_valid.tokens").read_text(
      encoding="utf-8").splitlines(True)[:num_lines]
  path = tmp_path / "wiki_small.txt"
  path.write_text("".join(lines), encoding="utf-8")
  return path


def write_span_records(fixtures_dir, tmp_path, output, **extra):
  flags = dict(input_file=_small_corpus(fixtures_dir, tmp_path),
               output_file=output,
               vocab_file=fixtures_dir / "vocab" / "uncased_vocab.txt",
               masking="span", span_geometric_p=0.2, span_max_length=10,
               sentence_task="none", max_seq_length=64,
               max_predictions_per_seq=12, dupe_factor=2)
  flags.update(extra)
  flags = {name: value for name, value in flags.items() if value is not None}
  script_runner.run_main("create_pretraining_data",
                         *["--%s=%s" % item for item in flags.items()])
  return str(output)


def test_records_carry_the_span_boundaries(fixtures_dir, tmp_path):
  path = write_span_records(fixtures_dir, tmp_path, tmp_path / "span.tf")
  vocab = tokenization.load_vocab(
      str(fixtures_dir / "vocab" / "uncased_vocab.txt"))
  records = record_format.read_records(path)
  assert len(records) > 100
  assert sorted(records[0]) == sorted(
      set(record_format.PRETRAINING_FEATURE_NAMES) - {"next_sentence_labels"} |
      set(record_format.SPAN_BOUNDARY_FEATURE_NAMES))
  for record in records:
    for name in ("masked_lm_positions", "masked_lm_span_left",
                 "masked_lm_span_right", "masked_lm_span_offset"):
      assert len(record[name]) == 12
    assert set(record["segment_ids"]) == {0}
    n = sum(record["input_mask"])
    assert record["input_ids"][0] == vocab[CLS]
    assert record["input_ids"][n - 1] == vocab[SEP]
    num = int(sum(record["masked_lm_weights"]))
    positions = record["masked_lm_positions"][:num]
    masked = set(positions)
    for i, p in enumerate(positions):
      left = record["masked_lm_span_left"][i]
      right = record["masked_lm_span_right"][i]
      # The boundary tokens are real and unmasked; the span between them is
      # all masked; the offset counts from its first token.
      assert 0 <= left < p < right <= n - 1
      assert left not in masked and right not in masked
      assert set(range(left + 1, right)) <= masked
      assert record["masked_lm_span_offset"][i] == p - left - 1
    for name in record_format.SPAN_BOUNDARY_FEATURE_NAMES:
      assert record[name][num:] == [0] * (12 - num)


def test_detect_tasks_from_the_records(fixtures_dir, tmp_path):
  plain = str(fixtures_dir / "original_bert_small" / "eval.tfrecord")
  assert pretraining_dataset.detect_tasks([plain]) == (
      record_format.PretrainingTasks(next_sentence=True, span_boundary=False))
  span = write_span_records(fixtures_dir, tmp_path, tmp_path / "span.tf")
  assert pretraining_dataset.detect_tasks([span]) == (
      record_format.PretrainingTasks(next_sentence=False, span_boundary=True))
  span_nsp = write_span_records(fixtures_dir, tmp_path,
                                tmp_path / "span_nsp.tf", sentence_task="nsp")
  tasks = pretraining_dataset.detect_tasks([span_nsp])
  assert tasks == record_format.PretrainingTasks(True, True)
  assert tasks.describe() == "masked LM + next sentence + span boundary"
  with pytest.raises(ValueError, match="Input files carry different "
                     "pretraining tasks: .*eval.tfrecord has masked LM \\+ "
                     "next sentence, .*span.tf has masked LM \\+ span "
                     "boundary"):
    pretraining_dataset.detect_tasks([plain, span])
  # Single segments with the original masking: the masked LM alone.
  mlm_only = write_span_records(fixtures_dir, tmp_path, tmp_path / "mlm.tf",
                                masking="token", span_geometric_p=None,
                                span_max_length=None)
  tasks = pretraining_dataset.detect_tasks([mlm_only])
  assert tasks == record_format.PretrainingTasks(False, False)
  assert tasks.describe() == "masked LM"
  # A record with only some of the span features.
  records = record_format.read_records(span)[:2]
  partial = tmp_path / "partial.tf"
  with tf.io.TFRecordWriter(str(partial)) as writer:
    for record in records:
      writer.write(record_format.features_to_example({
          name: (record_format.create_float_feature(values)
                 if name == "masked_lm_weights" else
                 record_format.create_int_feature(values))
          for name, values in record.items()
          if name != "masked_lm_span_offset"}))
  with pytest.raises(ValueError, match="partial.tf has masked_lm_span_left, "
                     "masked_lm_span_right but not all of"):
    pretraining_dataset.detect_tasks([str(partial)])
  masking = pretraining_dataset.DynamicMasking(4, 1, 2, 10)
  with pytest.raises(ValueError, match="--dynamic_masking .* span "
                     "boundaries"):
    pretraining_dataset.pretraining_dataset(
        [span], 64, 12, 4, is_training=False, dynamic_masking=masking,
        tasks=pretraining_dataset.detect_tasks([span]))
  # The pipeline reads the span features and no label.
  batch = next(iter(pretraining_dataset.pretraining_dataset(
      [span], 64, 12, 4, is_training=False,
      tasks=pretraining_dataset.detect_tasks([span]))))
  assert "next_sentence_labels" not in batch
  assert batch["masked_lm_span_offset"].shape == (4, 12)
  assert batch["masked_lm_span_left"].dtype == tf.int32


# ------------------------------------------------------------------ head --


def _np_gelu(x):
  return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) *
                                  (x + 0.044715 * x ** 3)))


def _np_layer_norm(x, gamma, beta):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def _np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


TINY = dict(vocab_size=11, hidden_size=4, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=8,
            max_position_embeddings=16, type_vocab_size=2,
            span_boundary_position_embedding_size=3,
            span_boundary_max_span_length=4)


def test_span_boundary_head_matches_numpy():
  config = BertConfig.from_dict(TINY)
  rng = np.random.RandomState(0)
  table = keras.Variable(rng.randn(11, 4).astype(np.float32),
                         name="word_embeddings")
  head = heads.SpanBoundaryHead(config, table)
  head.build()
  values = {}
  for variable in head.weights:
    value = rng.randn(*variable.shape).astype(np.float32)
    variable.assign(value)
    values[variable.path] = value
  sequence = rng.randn(2, 6, 4).astype(np.float32)
  # Sequence 0: span [2, 3] (boundaries 1, 4); sequence 1: span [1, 3]
  # (boundaries 0 = [CLS], 4), its third token at offset 2, and an offset of
  # 5, past the 4 rows, which uses the last row.
  left = np.array([[1, 1, 0], [0, 0, 0]])
  right = np.array([[4, 4, 0], [4, 4, 4]])
  offset = np.array([[0, 1, 0], [0, 2, 5]])
  got = head(tf.constant(sequence), tf.constant(left), tf.constant(right),
             tf.constant(offset)).numpy()

  def v(name):
    return values["span_boundary/" + name]

  rows = np.minimum(offset, 3)
  h0 = np.concatenate([
      np.take_along_axis(sequence, left[:, :, None], 1),
      np.take_along_axis(sequence, right[:, :, None], 1),
      v("position_embeddings")[rows]], -1).reshape(6, 11)
  h1 = _np_layer_norm(_np_gelu(h0 @ v("transform_0/dense/kernel") +
                               v("transform_0/dense/bias")),
                      v("transform_0/LayerNorm/gamma"),
                      v("transform_0/LayerNorm/beta"))
  h2 = _np_layer_norm(_np_gelu(h1 @ v("transform_1/dense/kernel") +
                               v("transform_1/dense/bias")),
                      v("transform_1/LayerNorm/gamma"),
                      v("transform_1/LayerNorm/beta"))
  want = _np_log_softmax(h2 @ table.numpy().T + v("output_bias"))
  assert got.shape == (6, 11)
  np.testing.assert_allclose(got, want, atol=1e-5)
  # A hand-checked row: position 0 of sequence 0 sees x[0, 1], x[0, 4], p[0].
  np.testing.assert_array_equal(
      h0[0], np.concatenate([sequence[0, 1], sequence[0, 4],
                             v("position_embeddings")[0]]))
  weights = pretraining.span_boundary_weights(tf.ones([2, 3]), offset,
                                              4).numpy()
  np.testing.assert_array_equal(weights, [[1, 1, 1], [1, 1, 0]])


def test_spanbert_pretrainer_variables_and_losses():
  config = BertConfig.from_dict(TINY)
  model = BertPretrainer(config, next_sentence=False, span_boundary=True)
  shapes = {v.path: tuple(v.shape) for v in model.weights}
  span_vars = {k: s for k, s in shapes.items()
               if k.startswith("cls/span_boundary/")}
  assert span_vars == {
      "cls/span_boundary/position_embeddings": (4, 3),
      "cls/span_boundary/transform_0/dense/kernel": (11, 4),
      "cls/span_boundary/transform_0/dense/bias": (4,),
      "cls/span_boundary/transform_0/LayerNorm/gamma": (4,),
      "cls/span_boundary/transform_0/LayerNorm/beta": (4,),
      "cls/span_boundary/transform_1/dense/kernel": (4, 4),
      "cls/span_boundary/transform_1/dense/bias": (4,),
      "cls/span_boundary/transform_1/LayerNorm/gamma": (4,),
      "cls/span_boundary/transform_1/LayerNorm/beta": (4,),
      "cls/span_boundary/output_bias": (11,),
  }
  assert not any(k.startswith("cls/seq_relationship") for k in shapes)
  # The pooler stays (for fine-tuning) but nothing trains it.
  assert "bert/pooler/dense/kernel" in shapes
  assert not any(v.path.startswith("bert/pooler")
                 for v in model.trainable_variables)
  plain = {v.path for v in BertPretrainer(config).weights}
  assert not any("span_boundary" in k for k in plain)
  assert "cls/seq_relationship/output_weights" in plain
  features = {
      "input_ids": tf.constant([[2, 5, 3, 3, 7, 1], [2, 3, 3, 3, 8, 1]]),
      "input_mask": tf.ones([2, 6], tf.int32),
      "segment_ids": tf.zeros([2, 6], tf.int32),
      "masked_lm_positions": tf.constant([[2, 3, 0], [1, 2, 3]]),
      "masked_lm_ids": tf.constant([[6, 9, 0], [4, 4, 10]]),
      "masked_lm_weights": tf.constant([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
      "masked_lm_span_left": tf.constant([[1, 1, 0], [0, 0, 0]]),
      "masked_lm_span_right": tf.constant([[4, 4, 0], [4, 4, 4]]),
      "masked_lm_span_offset": tf.constant([[0, 1, 0], [0, 1, 2]]),
  }
  outputs = pretraining.run_with_losses(model, features, training=False)
  assert "nsp_log_probs" not in outputs and "nsp_loss" not in outputs
  # The SBO loss: the masked LM's weighted mean NLL of its own predictions.
  nll = -np.take_along_axis(outputs["sbo_log_probs"].numpy(),
                            np.array([6, 9, 0, 4, 4, 10])[:, None], 1)[:, 0]
  w = np.array([1, 1, 0, 1, 1, 1], np.float32)
  assert float(outputs["sbo_loss"]) == pytest.approx(
      (w * nll).sum() / (w.sum() + 1e-5), abs=1e-5)
  assert float(outputs["total_loss"]) == pytest.approx(
      float(outputs["mlm_loss"]) + float(outputs["sbo_loss"]), abs=1e-6)
  sums = pretraining.eval_fn(model, features)
  assert sorted(sums) == ["loss", "masked_lm_accuracy", "masked_lm_loss",
                          "span_boundary_accuracy", "span_boundary_loss"]
  numerator, denominator = sums["span_boundary_loss"]
  assert float(denominator) == 5.0
  assert float(numerator) == pytest.approx((w * nll).sum(), abs=1e-4)
  _, logs = pretraining.loss_fn(model, features, training=False)
  assert sorted(logs) == ["mlm_accuracy", "mlm_loss", "sbo_accuracy",
                          "sbo_loss"]
  # Single segments with token masking: the masked LM alone.
  mlm_only = BertPretrainer(config, next_sentence=False)
  assert not any(v.path.startswith(("cls/seq_relationship",
                                    "cls/span_boundary"))
                 for v in mlm_only.weights)
  outputs = pretraining.run_with_losses(mlm_only, features, training=False)
  assert float(outputs["total_loss"]) == float(outputs["mlm_loss"])
  assert sorted(pretraining.eval_fn(mlm_only, features)) == [
      "loss", "masked_lm_accuracy", "masked_lm_loss"]


def test_span_boundary_config_keys_are_checked():
  assert BertConfig(vocab_size=5).span_boundary_position_embedding_size == 200
  assert "span_boundary_max_span_length" not in BertConfig(
      vocab_size=5).to_dict()
  with pytest.raises(ValueError, match="field "
                     "'span_boundary_max_span_length' must be an int > 0, "
                     "found 0"):
    BertConfig.from_dict(dict(TINY, span_boundary_max_span_length=0))


# ------------------------------------------------------------ end to end --


@pytest.mark.slow
def test_spanbert_pretraining_end_to_end(fixtures_dir, tmp_path):
  """create_pretraining_data -> run_pretraining: MLM + SBO, no NSP."""
  data = write_span_records(fixtures_dir, tmp_path, tmp_path / "span.tf",
                            dupe_factor=1)
  config = tmp_path / "bert_config.json"
  config.write_text(BertConfig.from_dict(dict(
      vocab_size=30522, hidden_size=32, num_hidden_layers=2,
      num_attention_heads=2, intermediate_size=64,
      max_position_embeddings=64, type_vocab_size=2,
      span_boundary_position_embedding_size=16)).to_json_string())
  out = tmp_path / "out"
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
      [sys.executable, str(ROOT / "run_pretraining.py"),
       "--bert_config_file=%s" % config, "--input_file=%s" % data,
       "--output_dir=%s" % out, "--do_train", "--do_eval",
       "--train_batch_size=16", "--eval_batch_size=16", "--max_eval_steps=4",
       "--max_seq_length=64", "--max_predictions_per_seq=12",
       "--learning_rate=2e-3", "--num_train_steps=40", "--num_warmup_steps=4",
       "--save_checkpoints_steps=40", "--iterations_per_loop=10",
       "--log_steps=10", "--seed=1"],
      env=env, capture_output=True, text=True, timeout=600, cwd=str(ROOT))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Pretraining tasks of the records: masked LM + span boundary" in (
      result.stderr)
  steps = [line for line in result.stderr.splitlines() if "] step " in line]

  def logged(line, key):
    return float(line.split(" %s = " % key)[1].split()[0])

  assert len(steps) == 4
  for key in ("loss", "mlm_loss", "sbo_loss"):
    assert logged(steps[-1], key) < logged(steps[0], key) - 0.5, key
  assert logged(steps[0], "loss") == pytest.approx(
      logged(steps[0], "mlm_loss") + logged(steps[0], "sbo_loss"), abs=1e-3)
  assert " nsp_" not in result.stderr
  results = metrics.read_eval_results(str(out / "eval_results.txt"))
  assert sorted(results) == ["global_step", "loss", "masked_lm_accuracy",
                             "masked_lm_loss", "span_boundary_accuracy",
                             "span_boundary_loss"]
  assert results["global_step"] == 40
  assert results["span_boundary_loss"] < logged(steps[0], "sbo_loss")
  names = dict(tf.train.list_variables(str(out / "model.ckpt-40")))
  assert names["cls/span_boundary/position_embeddings"] == [15, 16]
  assert "cls/span_boundary/transform_1/LayerNorm/gamma/adam_m" in names
  assert not any(n.startswith("cls/seq_relationship") for n in names)
  assert "bert/pooler/dense/kernel" in names
  assert "bert/pooler/dense/kernel/adam_m" not in names
  report = checkpoints.load_checkpoint(
      BertPretrainer(BertConfig.from_json_file(str(config)),
                     next_sentence=False, span_boundary=True),
      str(out / "model.ckpt-40"))
  assert not report.missing
