"""ALBERT's SQuAD features (`bert_tf.data.squad_sentencepiece`).

The features are compared with a transcription of google-research/albert's
`squad_utils.read_squad_examples` + `convert_examples_to_features` (below,
`_albert_features`: its dense LCS table, its backtracking and its
`_convert_index`, written from that code's behaviour) on the fixtures' SQuAD
samples (v1.1 training and dev, v2.0 with impossible questions) and on a
context made to strain the alignment (accents, ``quotes'', digit commas,
runs of whitespace, characters the model has never seen), with
SentencePiece models trained in the test: one on WikiText-2 (it never saw
the SQuAD texts) and a tiny one on the SQuAD texts themselves.
"""

import collections
import json

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import record_format
from bert_tf.data import squad as squad_data
from bert_tf.data import squad_sentencepiece
from bert_tf.tasks import squad as squad_task
from sentencepiece_models import train_albert_spm
from sentencepiece_models import write_squad_texts

STRAIN_CONTEXT = (
    "Beyonc\u00e9's  \u00e9lan, in 1,000, ``quoted'' caf\u00e9s\t"
    "(1995\u20132003) na\u00efve \u2014 \u00c5ngstr\u00f6m\u00a0units; "
    "12,345,678, \u03b1\u03b2\u03b3 Stra\u00dfe \ufb01ne \u2163 end.")


def _strain_file(tmp_path):
  """A SQuAD v2.0 file on `STRAIN_CONTEXT`, answers at awkward places."""
  answers = ["\u00e9lan", "1,000", "``quoted''", "1995\u20132003", "na\u00efve",
             "\u00c5ngstr\u00f6m", "12,345,678", "\u03b1\u03b2\u03b3",
             "Stra\u00dfe", "\ufb01ne \u2163", "end."]
  qas = []
  for i, text in enumerate(answers):
    qas.append({"id": "q%d" % i, "question": "Which %s? ``Really''" % text,
                "answers": [{"text": text,
                             "answer_start": STRAIN_CONTEXT.index(text)}],
                "is_impossible": False})
  qas.append({"id": "none", "question": "Nothing here?", "answers": [],
              "is_impossible": True})
  path = tmp_path / "strain.json"
  path.write_text(json.dumps({"version": "v2.0", "data": [
      {"title": "strain", "paragraphs": [
          {"context": STRAIN_CONTEXT, "qas": qas}]}]}), encoding="utf-8")
  return path


# ---------------------------------------------------------------------------
# google-research/albert's conversion, transcribed (Python 3 behaviour).


def _albert_read(input_file, is_training):
  """ALBERT's `read_squad_examples`: character offsets, nothing skipped."""
  with open(input_file, encoding="utf-8") as f:
    data = json.load(f)["data"]
  examples = []
  for entry in data:
    for paragraph in entry["paragraphs"]:
      for qa in paragraph["qas"]:
        example = dict(qas_id=qa["id"], question_text=qa["question"],
                       paragraph_text=paragraph["context"],
                       orig_answer_text=None, start_position=None,
                       is_impossible=False)
        if is_training:
          example["is_impossible"] = qa.get("is_impossible", False)
          if not example["is_impossible"]:
            example["orig_answer_text"] = qa["answers"][0]["text"]
            example["start_position"] = qa["answers"][0]["answer_start"]
          else:
            example["start_position"] = -1
            example["orig_answer_text"] = ""
        examples.append(example)
  return examples


def _albert_convert_index(index, pos, m=None, is_start=True):
  if index[pos] is not None:
    return index[pos]
  n = len(index)
  rear = pos
  while rear < n - 1 and index[rear] is None:
    rear += 1
  front = pos
  while front > 0 and index[front] is None:
    front -= 1
  assert index[front] is not None or index[rear] is not None
  if index[front] is None:
    if index[rear] >= 1:
      if is_start:
        return 0
      else:
        return index[rear] - 1
    return index[rear]
  if index[rear] is None:
    if m is not None and index[front] < m - 1:
      if is_start:
        return index[front] + 1
      else:
        return m - 1
    return index[front]
  if is_start:
    if index[rear] > index[front] + 1:
      return index[front] + 1
    else:
      return index[rear]
  else:
    if index[rear] > index[front] + 1:
      return index[rear] - 1
    else:
      return index[front]


def _albert_max_context(doc_spans, cur_span_index, position):
  best_score, best_span_index = None, None
  for span_index, (start, length) in enumerate(doc_spans):
    end = start + length - 1
    if position < start or position > end:
      continue
    score = min(position - start, end - position) + 0.01 * length
    if best_score is None or score > best_score:
      best_score, best_span_index = score, span_index
  return cur_span_index == best_span_index


def _albert_features(examples, sp_model, max_seq_length, doc_stride,
                     max_query_length, is_training, do_lower_case):
  """ALBERT's `convert_examples_to_features`, features as dicts."""
  preprocess = tokenization.preprocess_text
  underline = tokenization.SPIECE_UNDERLINE
  features = []
  unique_id = 1000000000
  max_n, max_m = 1024, 1024
  f = np.zeros((max_n, max_m), dtype=np.float32)
  for example_index, example in enumerate(examples):
    query_tokens = tokenization.encode_ids(
        sp_model, preprocess(example["question_text"], lower=do_lower_case))
    if len(query_tokens) > max_query_length:
      query_tokens = query_tokens[0:max_query_length]
    paragraph_text = example["paragraph_text"]
    para_tokens = tokenization.encode_pieces(
        sp_model, preprocess(paragraph_text, lower=do_lower_case))
    chartok_to_tok_index = []
    tok_start_to_chartok_index = []
    tok_end_to_chartok_index = []
    char_cnt = 0
    for i, token in enumerate(para_tokens):
      new_token = token.replace(underline, " ")
      chartok_to_tok_index.extend([i] * len(new_token))
      tok_start_to_chartok_index.append(char_cnt)
      char_cnt += len(new_token)
      tok_end_to_chartok_index.append(char_cnt - 1)
    tok_cat_text = "".join(para_tokens).replace(underline, " ")
    n, m = len(paragraph_text), len(tok_cat_text)
    if n > max_n or m > max_m:
      max_n, max_m = max(n, max_n), max(m, max_m)
      f = np.zeros((max_n, max_m), dtype=np.float32)
    g = {}

    def _lcs_match(max_dist, n=n, m=m):
      f.fill(0)
      g.clear()
      for i in range(n):
        for j in range(i - max_dist, i + max_dist):
          if j >= m or j < 0:
            continue
          if i > 0:
            g[(i, j)] = 0
            f[i, j] = f[i - 1, j]
          if j > 0 and f[i, j - 1] > f[i, j]:
            g[(i, j)] = 1
            f[i, j] = f[i, j - 1]
          f_prev = f[i - 1, j - 1] if i > 0 and j > 0 else 0
          if (preprocess(paragraph_text[i], lower=do_lower_case,
                         remove_space=False) == tok_cat_text[j]
              and f_prev + 1 > f[i, j]):
            g[(i, j)] = 2
            f[i, j] = f_prev + 1

    max_dist = abs(n - m) + 5
    for _ in range(2):
      _lcs_match(max_dist)
      if f[n - 1, m - 1] > 0.8 * n:
        break
      max_dist *= 2
    orig_to_chartok_index = [None] * n
    chartok_to_orig_index = [None] * m
    i, j = n - 1, m - 1
    while i >= 0 and j >= 0:
      if (i, j) not in g:
        break
      if g[(i, j)] == 2:
        orig_to_chartok_index[i] = j
        chartok_to_orig_index[j] = i
        i, j = i - 1, j - 1
      elif g[(i, j)] == 1:
        j = j - 1
      else:
        i = i - 1
    if (all(v is None for v in orig_to_chartok_index) or
        f[n - 1, m - 1] < 0.8 * n):
      continue  # MISMATCH DETECTED
    tok_start_to_orig_index = []
    tok_end_to_orig_index = []
    for i in range(len(para_tokens)):
      tok_start_to_orig_index.append(_albert_convert_index(
          chartok_to_orig_index, tok_start_to_chartok_index[i], n,
          is_start=True))
      tok_end_to_orig_index.append(_albert_convert_index(
          chartok_to_orig_index, tok_end_to_chartok_index[i], n,
          is_start=False))
    if not is_training:
      tok_start_position = tok_end_position = None
    if is_training and example["is_impossible"]:
      tok_start_position = tok_end_position = 0
    if is_training and not example["is_impossible"]:
      start_position = example["start_position"]
      end_position = start_position + len(example["orig_answer_text"]) - 1
      tok_start_position = chartok_to_tok_index[_albert_convert_index(
          orig_to_chartok_index, start_position, is_start=True)]
      tok_end_position = chartok_to_tok_index[_albert_convert_index(
          orig_to_chartok_index, end_position, is_start=False)]
      assert tok_start_position <= tok_end_position
    all_doc_tokens = [sp_model.PieceToId(p) for p in para_tokens]
    max_tokens_for_doc = max_seq_length - len(query_tokens) - 3
    doc_spans = []
    start_offset = 0
    while start_offset < len(all_doc_tokens):
      length = len(all_doc_tokens) - start_offset
      if length > max_tokens_for_doc:
        length = max_tokens_for_doc
      doc_spans.append((start_offset, length))
      if start_offset + length == len(all_doc_tokens):
        break
      start_offset += min(length, doc_stride)
    for doc_span_index, (span_start, span_length) in enumerate(doc_spans):
      tokens = [sp_model.PieceToId("[CLS]")]
      segment_ids, p_mask = [0], [0]
      token_is_max_context = {}
      cur_start, cur_end = [], []
      for token in query_tokens:
        tokens.append(token)
        segment_ids.append(0)
        p_mask.append(1)
      tokens.append(sp_model.PieceToId("[SEP]"))
      segment_ids.append(0)
      p_mask.append(1)
      for i in range(span_length):
        split_token_index = span_start + i
        cur_start.append(tok_start_to_orig_index[split_token_index])
        cur_end.append(tok_end_to_orig_index[split_token_index])
        token_is_max_context[len(tokens)] = _albert_max_context(
            doc_spans, doc_span_index, split_token_index)
        tokens.append(all_doc_tokens[split_token_index])
        segment_ids.append(1)
        p_mask.append(0)
      tokens.append(sp_model.PieceToId("[SEP]"))
      segment_ids.append(1)
      p_mask.append(1)
      paragraph_len = len(tokens)
      input_ids = tokens  # the same list: padding shows in the pieces too
      input_mask = [1] * len(input_ids)
      while len(input_ids) < max_seq_length:
        input_ids.append(0)
        input_mask.append(0)
        segment_ids.append(0)
        p_mask.append(1)
      span_is_impossible = example["is_impossible"]
      start_position = end_position = None
      if is_training and not span_is_impossible:
        doc_end = span_start + span_length - 1
        if not (tok_start_position >= span_start and
                tok_end_position <= doc_end):
          start_position = end_position = 0
          span_is_impossible = True
        else:
          doc_offset = len(query_tokens) + 2
          start_position = tok_start_position - span_start + doc_offset
          end_position = tok_end_position - span_start + doc_offset
      if is_training and span_is_impossible:
        start_position = end_position = 0
      features.append(dict(
          unique_id=unique_id,
          example_index=None if is_training else example_index,
          doc_span_index=doc_span_index,
          tok_start_to_orig_index=cur_start, tok_end_to_orig_index=cur_end,
          token_is_max_context=token_is_max_context,
          tokens=[sp_model.IdToPiece(x) for x in tokens],
          input_ids=input_ids, input_mask=input_mask,
          segment_ids=segment_ids, paragraph_len=paragraph_len,
          start_position=start_position, end_position=end_position,
          is_impossible=span_is_impossible, p_mask=p_mask))
      unique_id += 1
  return features


# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spm_models(fixtures_dir, tmp_path_factory):
  """{name: FullTokenizer model path}: WikiText-2's and the SQuAD texts'."""
  root = tmp_path_factory.mktemp("spm")
  wiki = root / "wiki.txt"
  wiki.write_text("\n".join(
      line.strip() for line in
      (fixtures_dir / "corpora" / "wikitext2_valid.tokens").read_text(
          encoding="utf-8").splitlines()[:1500]
      if line.strip() and not line.strip().startswith("=")) + "\n",
                  encoding="utf-8")
  squad_texts = write_squad_texts(fixtures_dir, root / "squad.txt")
  return {"wiki": train_albert_spm(wiki, root / "wiki", vocab_size=800),
          "squad": train_albert_spm(squad_texts, root / "squad",
                                    vocab_size=300)}


def _ours(input_file, tokenizer, is_training, version_2, max_seq_length,
          doc_stride, max_query_length):
  examples = squad_sentencepiece.read_squad_examples(
      str(input_file), is_training, version_2)
  features = []
  squad_sentencepiece.convert_examples_to_features(
      examples, tokenizer, max_seq_length, doc_stride, max_query_length,
      is_training, features.append, tokenizer.do_lower_case)
  return examples, features


def _as_albert(feature, is_training):
  return dict(
      unique_id=feature.unique_id,
      example_index=None if is_training else feature.example_index,
      doc_span_index=feature.doc_span_index,
      tok_start_to_orig_index=feature.tok_start_to_orig_index,
      tok_end_to_orig_index=feature.tok_end_to_orig_index,
      token_is_max_context=feature.token_is_max_context,
      tokens=feature.tokens, input_ids=feature.input_ids,
      input_mask=feature.input_mask, segment_ids=feature.segment_ids,
      paragraph_len=feature.paragraph_len,
      start_position=feature.start_position,
      end_position=feature.end_position,
      is_impossible=feature.is_impossible, p_mask=feature.p_mask)


CASES = [
    # file, version 2, is_training, max_seq_length, doc_stride, query length
    ("train-v1.1-sample.json", False, True, 64, 16, 12),
    ("train-v1.1-sample.json", False, False, 128, 48, 64),
    ("dev-v1.1-sample.json", False, False, 48, 8, 8),
    ("dev-v2.0-sample.json", True, True, 64, 24, 16),
    ("dev-v2.0-sample.json", True, False, 40, 8, 10),
    ("strain", True, True, 40, 6, 8),
    ("strain", True, False, 384, 128, 64),
]


@pytest.mark.parametrize("model", ["wiki", "squad"])
@pytest.mark.parametrize("do_lower_case", [True, False])
@pytest.mark.parametrize("name,version_2,is_training,max_seq_length,"
                         "doc_stride,max_query_length", CASES)
def test_features_equal_albert(spm_models, fixtures_dir, tmp_path, model,
                               do_lower_case, name, version_2, is_training,
                               max_seq_length, doc_stride, max_query_length):
  input_file = (_strain_file(tmp_path) if name == "strain"
                else fixtures_dir / "squad" / name)
  tokenizer = tokenization.FullTokenizer(None, do_lower_case,
                                         spm_model_file=spm_models[model])
  _, ours = _ours(input_file, tokenizer, is_training, version_2,
                  max_seq_length, doc_stride, max_query_length)
  expected = _albert_features(
      _albert_read(str(input_file), is_training), tokenizer.sp_model,
      max_seq_length, doc_stride, max_query_length, is_training,
      do_lower_case)
  assert len(ours) == len(expected) > 0
  for feature, want in zip(ours, expected):
    assert _as_albert(feature, is_training) == want, feature.unique_id
  if is_training:
    # Windows that miss the answer, and answers, both occur.
    assert {f.is_impossible for f in ours} == {True, False}


def test_answers_are_the_annotated_text(spm_models, fixtures_dir, tmp_path):
  """A training window's answer span cut out of the context is the answer."""
  tokenizer = tokenization.FullTokenizer(None, True,
                                         spm_model_file=spm_models["wiki"])
  for input_file, version_2 in [
      (fixtures_dir / "squad" / "train-v1.1-sample.json", False),
      (fixtures_dir / "squad" / "dev-v2.0-sample.json", True),
      (_strain_file(tmp_path), True)]:
    examples, features = _ours(input_file, tokenizer, True, version_2, 128,
                               32, 32)
    answered = set()
    for feature in features:
      example = examples[feature.example_index]
      if feature.is_impossible:
        assert (feature.start_position, feature.end_position) == (0, 0)
        continue
      text = squad_sentencepiece.answer_text(
          example, feature, feature.start_position, feature.end_position)
      assert text == example.orig_answer_text, example.qas_id
      answered.add(example.qas_id)
    assert answered == {e.qas_id for e in examples if not e.is_impossible}


def test_mismatched_context_is_skipped(spm_models, tmp_path):
  """A context the pieces cannot align to has no features (ALBERT's skip)."""
  context = "\u2460\u2461\u2462\u2463\u2464 \ufb00\ufb00\ufb00\ufb00 x"
  path = tmp_path / "odd.json"
  path.write_text(json.dumps({"data": [{"paragraphs": [
      {"context": context, "qas": [{"id": "a", "question": "what?",
                                    "answers": []}]},
      {"context": "plain text here.", "qas": [{"id": "b",
                                               "question": "what?",
                                               "answers": []}]}]}]}))
  tokenizer = tokenization.FullTokenizer(None, True,
                                         spm_model_file=spm_models["squad"])
  _, ours = _ours(path, tokenizer, False, False, 64, 16, 8)
  expected = _albert_features(_albert_read(str(path), False),
                              tokenizer.sp_model, 64, 16, 8, False, True)
  assert [_as_albert(f, False) for f in ours] == expected
  assert [f.example_index for f in ours] == [1]


def test_records_and_predictions(spm_models, fixtures_dir, tmp_path):
  """The TFRecords carry p_mask; logits peaked on a span predict its text."""
  tokenizer = tokenization.FullTokenizer(None, True,
                                         spm_model_file=spm_models["wiki"])
  train_file = fixtures_dir / "squad" / "train-v1.1-sample.json"
  record = str(tmp_path / "train.tf_record")
  train_examples = squad_task.read_examples(str(train_file), tokenizer,
                                            is_training=True)
  assert len(train_examples) == 10
  num_features = squad_task.write_train_features(
      train_examples, tokenizer, record, 64, 16, 12)
  records = record_format.read_records(record)
  assert len(records) == num_features
  assert set(records[0]) == {"unique_ids", "input_ids", "input_mask",
                             "segment_ids", "p_mask", "start_positions",
                             "end_positions", "is_impossible"}
  dataset = squad_data.squad_dataset(record, 64, 4, is_training=True,
                                     drop_remainder=True)
  batch = next(iter(dataset))
  assert batch["input_ids"].shape == (4, 64)

  # Predictions: logits that put the best span on each training answer (one
  # window per question).
  examples, features = _ours(train_file, tokenizer, True, False, 2048, 128,
                             64)
  assert len(features) == len(examples)
  results = []
  for feature in features:
    start = [0.0] * 2048
    end = [0.0] * 2048
    start[feature.start_position] += 10.0
    end[feature.end_position] += 10.0
    results.append(squad_task.RawResult(feature.unique_id, start, end))
  for version_2 in (False, True):
    predictions, nbest, null_odds = squad_task.compute_predictions(
        examples, features, results, 20, 30, True, version_2,
        answer_text_fn=squad_sentencepiece.answer_text)
    for example in examples:
      assert predictions[example.qas_id] == example.orig_answer_text
      assert nbest[example.qas_id][0]["text"] == example.orig_answer_text
      assert set(nbest[example.qas_id][0]) == {
          "text", "probability", "start_logit", "end_logit"}
    assert bool(null_odds) == version_2
