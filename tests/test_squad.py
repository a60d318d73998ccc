"""SQuAD reading, windows, answer extraction and the official metrics."""

import json
import logging
import math

import pytest

from bert_tf import tokenization
from bert_tf.data import squad as squad_data
from bert_tf.tasks import squad
from bert_tf.tasks import squad_metrics


@pytest.fixture(scope="module")
def tokenizer(fixtures_dir):
  return tokenization.FullTokenizer(
      str(fixtures_dir / "vocab" / "uncased_vocab.txt"), do_lower_case=True)


def _squad_file(tmp_path, qas, context="Paris is in France."):
  path = tmp_path / "bad.json"
  path.write_text(json.dumps({"version": "v2.0", "data": [
      {"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}))
  return str(path)


# ---------------------------------------------------------------- reading --


def test_reads_v2_with_impossible_questions(fixtures_dir):
  path = str(fixtures_dir / "squad" / "dev-v2.0-sample.json")
  train = squad_data.read_squad_examples(path, is_training=True,
                                         version_2_with_negative=True)
  predict = squad_data.read_squad_examples(path, is_training=False)
  assert len(train) == 14 and len(predict) == 14
  assert sum(e.is_impossible for e in train) == 6
  first = train[0]
  assert first.qas_id == "56ddde6b9a695914005b9628"
  assert first.question_text == "In what country is Normandy located?"
  assert first.doc_tokens[:5] == ["The", "Normans", "(Norman:", "Nourmands;",
                                  "French:"]
  assert (first.start_position, first.end_position) == (26, 26)
  assert first.doc_tokens[26] == "France."
  assert first.orig_answer_text == "France"
  impossible = [e for e in train if e.is_impossible][0]
  assert impossible.qas_id == "5ad39d53604f3c001a3fe8d3"
  assert (impossible.start_position, impossible.end_position,
          impossible.orig_answer_text) == (-1, -1, "")
  assert predict[0].start_position is None and not predict[3].is_impossible


def test_reads_v1_files(fixtures_dir):
  dev = squad_data.read_squad_examples(
      str(fixtures_dir / "squad" / "dev-v1.1-sample.json"), is_training=False)
  train = squad_data.read_squad_examples(
      str(fixtures_dir / "squad" / "train-v1.1-sample.json"),
      is_training=True)
  assert len(dev) == 5 and len(train) == 10
  assert dev[0].question_text == (
      "Which NFL team represented the AFC at Super Bowl 50?")
  assert train[0].qas_id == "5733be284776f41900661182"
  assert (train[0].start_position, train[0].end_position) == (90, 92)
  assert train[0].doc_tokens[90:93] == ["Saint", "Bernadette", "Soubirous"]


def test_missing_question_field_names_the_id(tmp_path):
  path = _squad_file(tmp_path, [{"id": "q-17", "answers": []}])
  with pytest.raises(ValueError) as e:
    squad_data.read_squad_examples(path, is_training=False)
  assert str(e.value) == ("%s: question id q-17: missing required field "
                          "'question'" % path)


def test_missing_answers_for_training_names_the_id(tmp_path):
  path = _squad_file(tmp_path, [{"id": "q-3", "question": "Where?"}])
  with pytest.raises(ValueError, match="question id q-3: missing required "
                     "field 'answers'"):
    squad_data.read_squad_examples(path, is_training=True)
  with pytest.raises(ValueError, match="question id q-3: missing required "
                     "field 'is_impossible'"):
    squad_data.read_squad_examples(path, is_training=True,
                                   version_2_with_negative=True)


def test_missing_id_names_the_position(tmp_path):
  path = _squad_file(tmp_path, [{"question": "Where?"}])
  with pytest.raises(ValueError) as e:
    squad_data.read_squad_examples(path, is_training=False)
  assert str(e.value) == ("%s: article 0, paragraph 0, question 0: missing "
                          "required field 'id'" % path)


def test_two_training_answers_are_an_error(tmp_path):
  path = _squad_file(tmp_path, [{
      "id": "q-5", "question": "Where?",
      "answers": [{"text": "France", "answer_start": 12},
                  {"text": "France", "answer_start": 12}]}])
  with pytest.raises(ValueError, match="question id q-5: for training, each "
                     "question should have exactly 1 answer, found 2"):
    squad_data.read_squad_examples(path, is_training=True)


def test_answer_not_in_context_is_skipped_with_a_warning(tmp_path, caplog):
  path = _squad_file(tmp_path, [
      {"id": "good", "question": "Where?",
       "answers": [{"text": "France", "answer_start": 12}]},
      {"id": "moved", "question": "Which?",
       "answers": [{"text": "Francs", "answer_start": 12}]}])
  with caplog.at_level(logging.WARNING):
    examples = squad_data.read_squad_examples(path, is_training=True)
  assert [e.qas_id for e in examples] == ["good"]
  assert ("Could not find answer of question moved: 'France.' vs. 'Francs'"
          in caplog.text)


# ---------------------------------------------------------------- windows --


def test_improve_answer_span_finds_the_year():
  class Tokenizer(object):

    def tokenize(self, text):
      return text.split()

  doc_tokens = ["born", "(", "1895", "-", "1943", ")", "."]
  assert squad_data.improve_answer_span(doc_tokens, 1, 6, Tokenizer(),
                                        "1895") == (2, 2)
  assert squad_data.improve_answer_span(doc_tokens, 1, 6, Tokenizer(),
                                        "1896") == (1, 6)


def test_check_is_max_context():
  # "the man went to the store and bought a gallon of milk": spans A, B, C.
  spans = [squad_data.DocSpan(0, 5), squad_data.DocSpan(3, 5),
           squad_data.DocSpan(6, 5)]
  # "bought" (7): 4 left/0 right in B, 1 left/3 right in C.
  assert [squad_data.check_is_max_context(spans, i, 7)
          for i in range(3)] == [False, False, True]
  assert squad_data.doc_spans_of(12, 5, 3) == [
      squad_data.DocSpan(0, 5), squad_data.DocSpan(3, 5),
      squad_data.DocSpan(6, 5), squad_data.DocSpan(9, 3)]


def test_training_windows(fixtures_dir, tokenizer):
  examples = squad_data.read_squad_examples(
      str(fixtures_dir / "squad" / "train-v1.1-sample.json"),
      is_training=True)[:2]
  features = []
  count = squad_data.convert_examples_to_features(
      examples, tokenizer, max_seq_length=64, doc_stride=16,
      max_query_length=16, is_training=True, output_fn=features.append)
  assert count == 16
  assert [(f.unique_id, f.example_index, f.doc_span_index)
          for f in features[:3]] == [(1000000000, 0, 0), (1000000001, 0, 1),
                                     (1000000002, 0, 2)]
  assert [(f.start_position, f.end_position) for f in features] == [
      (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (50, 57), (34, 41), (18, 25),
      (52, 56), (36, 40), (20, 24), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0)]
  answer = features[5].tokens[50:58]
  assert answer == ["saint", "bern", "##ade", "##tte", "so", "##ub", "##iro",
                    "##us"]
  first = features[0]
  assert first.tokens[:17] == [
      "[CLS]", "to", "whom", "did", "the", "virgin", "mary", "allegedly",
      "appear", "in", "1858", "in", "lou", "##rdes", "france", "?", "[SEP]"]
  assert first.tokens[17:20] == ["architectural", "##ly", ","]
  assert first.tokens[-1] == "[SEP]" and len(first.tokens) == 64
  assert first.segment_ids == [0] * 17 + [1] * 47
  assert first.token_to_orig_map[17] == 0 and first.token_to_orig_map[20] == 1
  # 46 document tokens per window, windows every 16 tokens: document token
  # 30 has most context in window 0, token 31 in window 1.
  assert first.token_is_max_context[47] and not first.token_is_max_context[48]
  assert features[1].token_is_max_context[33]


def test_query_too_long_for_the_window(tokenizer):
  with pytest.raises(ValueError, match=r"The max_seq_length \(20\) must be "
                     r"greater than max_query_length \(17\) \+ 3"):
    squad_data.convert_examples_to_features([], tokenizer, 20, 8, 17, False,
                                            lambda f: None)


def test_feature_records_round_trip(fixtures_dir, tokenizer, tmp_path):
  examples = squad_data.read_squad_examples(
      str(fixtures_dir / "squad" / "train-v1.1-sample.json"),
      is_training=True)[:2]
  writer = squad_data.FeatureWriter(str(tmp_path / "train.tf_record"), True)
  squad_data.convert_examples_to_features(examples, tokenizer, 64, 16, 16,
                                          True, writer.process_feature)
  writer.close()
  assert writer.num_features == 16
  batches = list(squad_data.squad_dataset(writer.filename, 64, 8,
                                          is_training=False,
                                          drop_remainder=False))
  assert [b["unique_ids"].numpy().tolist() for b in batches] == [
      list(range(1000000000, 1000000008)), list(range(1000000008,
                                                       1000000016))]
  # squad_dataset with is_training=False does not read the positions.
  assert "start_positions" not in batches[0]


# ------------------------------------------------------- write_predictions --


@pytest.fixture()
def smith(tokenizer):
  """One example, one window.

  [CLS] who ? [SEP] steve smith ' s dog barked . [SEP]
  """
  example = squad_data.SquadExample("q1", "Who?", ["Steve", "Smith's", "dog",
                                                   "barked."])
  features = []
  squad_data.convert_examples_to_features([example], tokenizer, 16, 128, 4,
                                          False, features.append)
  start = [-10.0] * 16
  end = [-10.0] * 16
  start[4], start[9], start[0] = 5.0, 3.0, 2.0
  end[5], end[8], end[0] = 4.0, 2.0, 1.0
  return [example], features, [squad.RawResult(1000000000, start, end)]


def test_get_final_text_aligns_to_the_original():
  assert squad.get_final_text("steve smith", "Steve Smith's", True) == (
      "Steve Smith")
  assert squad.get_final_text("1895", "(1895-1943).", True) == "1895"
  # Not found in the tokenized original: the original text.
  assert squad.get_final_text("bob", "Steve Smith's", True) == "Steve Smith's"


def test_write_predictions_v1(smith, tmp_path):
  examples, features, results = smith
  assert features[0].tokens[:12] == ["[CLS]", "who", "?", "[SEP]", "steve",
                                     "smith", "'", "s", "dog", "barked", ".",
                                     "[SEP]"]
  files = [str(tmp_path / n) for n in ("p.json", "n.json", "o.json")]
  predictions, nbest, null_odds = squad.write_predictions(
      examples, features, results, 3, 30, True, *files)
  assert predictions == {"q1": "Steve Smith"}
  assert null_odds == {}
  p = 1.0 / (1.0 + math.exp(-2.0))
  assert nbest["q1"] == [
      {"text": "Steve Smith", "probability": pytest.approx(p),
       "start_logit": 5.0, "end_logit": 4.0},
      {"text": "Steve Smith's dog", "probability": pytest.approx(1 - p),
       "start_logit": 5.0, "end_logit": 2.0}]
  with open(files[0]) as f:
    assert f.read() == '{\n    "q1": "Steve Smith"\n}\n'
  with open(files[1]) as f:
    assert json.load(f) == json.loads(json.dumps(nbest))
  assert not (tmp_path / "o.json").exists()


def test_write_predictions_max_answer_length(smith, tmp_path):
  examples, features, results = smith
  files = [str(tmp_path / n) for n in ("p.json", "n.json", "o.json")]
  _, nbest, _ = squad.write_predictions(examples, features, results, 3, 2,
                                        True, *files)
  assert [e["text"] for e in nbest["q1"]] == ["Steve Smith"]
  # No valid span at all: the original's placeholder.
  _, nbest, _ = squad.write_predictions(examples, features, results, 1, 30,
                                        True, *files)
  assert [e["text"] for e in nbest["q1"]] == ["Steve Smith"]
  results[0].start_logits[4] = -20.0
  results[0].start_logits[9] = -20.0
  _, nbest, _ = squad.write_predictions(examples, features, results, 2, 30,
                                        True, *files)
  assert nbest["q1"] == [{"text": "empty", "probability": 1.0,
                          "start_logit": 0.0, "end_logit": 0.0}]


def test_write_predictions_v2_null_threshold(smith, tmp_path):
  examples, features, results = smith
  files = [str(tmp_path / n) for n in ("p.json", "n.json", "o.json")]
  predictions, nbest, null_odds = squad.write_predictions(
      examples, features, results, 3, 30, True, *files,
      version_2_with_negative=True, null_score_diff_threshold=0.0)
  # Null score 2 + 1 = 3, best span 5 + 4 = 9.
  assert null_odds == {"q1": -6.0}
  assert predictions == {"q1": "Steve Smith"}
  assert [(e["text"], e["start_logit"], e["end_logit"])
          for e in nbest["q1"]] == [("Steve Smith", 5.0, 4.0),
                                    ("Steve Smith's dog", 5.0, 2.0),
                                    ("", 2.0, 1.0)]
  total = math.exp(9) + math.exp(7) + math.exp(3)
  assert nbest["q1"][2]["probability"] == pytest.approx(math.exp(3) / total)
  with open(files[2]) as f:
    assert json.load(f) == {"q1": -6.0}
  predictions, _, _ = squad.write_predictions(
      examples, features, results, 3, 30, True, *files,
      version_2_with_negative=True, null_score_diff_threshold=-7.0)
  assert predictions == {"q1": ""}


def test_write_predictions_v2_without_a_valid_span(smith, tmp_path):
  examples, features, results = smith
  files = [str(tmp_path / n) for n in ("p.json", "n.json", "o.json")]
  # The best start and end are both [CLS]: only the null answer is left,
  # where the original fails for want of a non-null one.
  results[0].start_logits[0] = 7.0
  results[0].end_logits[0] = 6.0
  predictions, nbest, null_odds = squad.write_predictions(
      examples, features, results, 1, 30, True, *files,
      version_2_with_negative=True, null_score_diff_threshold=1e5)
  assert predictions == {"q1": ""}
  assert nbest["q1"] == [{"text": "", "probability": 1.0,
                          "start_logit": 7.0, "end_logit": 6.0}]
  assert null_odds == {"q1": 13.0 + 2e6}
  with open(files[2]) as f:
    assert json.load(f) == {"q1": 13.0 + 2e6}


# ---------------------------------------------------------------- metrics --


def test_normalize_and_token_scores():
  assert squad_metrics.normalize_answer("The  Quick, Brown fox!") == (
      "quick brown fox")
  assert squad_metrics.normalize_answer("an apple a day") == "apple day"
  assert squad_metrics.compute_f1("the cat sat", "cat sat down") == (
      pytest.approx(0.8))
  assert squad_metrics.compute_f1("", "") == 1
  assert squad_metrics.compute_f1("", "a cat") == 0
  assert squad_metrics.compute_f1("the", "a") == 1  # Both normalize to "".
  assert squad_metrics.compute_exact("The Denver Broncos", "denver broncos")
  assert squad_metrics.f1_score_v1("Panthers", "Carolina Panthers") == (
      pytest.approx(2 / 3))
  assert squad_metrics.f1_score_v1("a", "the") == 0


def _dataset(qas):
  return [{"paragraphs": [{"context": "c", "qas": [
      {"id": qid, "answers": [{"text": t} for t in answers]}
      for qid, answers in qas]}]}]


def test_evaluate_v1_hand_computed():
  dataset = _dataset([("q1", ["Denver Broncos", "Broncos"]),
                      ("q2", ["Carolina Panthers"]), ("q3", ["Santa Clara"])])
  results = squad_metrics.evaluate_v1(
      dataset, {"q1": "the Denver Broncos", "q2": "Panthers"})
  assert results == {"exact_match": pytest.approx(100.0 / 3),
                     "f1": pytest.approx(100.0 * (1 + 2 / 3) / 3)}


def test_evaluate_v2_hand_computed():
  dataset = _dataset([("a", ["Paris"]), ("b", ["in 1900"]), ("c", []),
                      ("d", [])])
  preds = {"a": "Paris", "b": "1900", "c": "", "d": "London"}
  na_probs = {"a": -5.0, "b": 2.0, "c": 3.0, "d": -6.0}
  results = squad_metrics.evaluate_v2(dataset, preds, na_probs)
  # Null odds above 1.0 (b, c) count as "no answer": a 1, b 0, c 1, d 0.
  assert list(results.items()) == [
      ("exact", 50.0), ("f1", 50.0), ("total", 4), ("HasAns_exact", 50.0),
      ("HasAns_f1", 50.0), ("HasAns_total", 2), ("NoAns_exact", 50.0),
      ("NoAns_f1", 50.0), ("NoAns_total", 2), ("best_exact", 50.0),
      ("best_exact_thresh", 0.0), ("best_f1", pytest.approx(200.0 / 3)),
      ("best_f1_thresh", 2.0)]
  # Without null odds: raw scores, no best thresholds.
  results = squad_metrics.evaluate_v2(dataset, preds)
  assert dict(results) == {
      "exact": 50.0, "f1": pytest.approx(100.0 * (1 + 2 / 3 + 1) / 4),
      "total": 4, "HasAns_exact": 50.0,
      "HasAns_f1": pytest.approx(100.0 * (1 + 2 / 3) / 2), "HasAns_total": 2,
      "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2}


def test_evaluate_v2_needs_every_prediction():
  dataset = _dataset([("a", ["Paris"]), ("b", ["Rome"]), ("c", [])])
  with pytest.raises(ValueError, match=r"No prediction for 2 of 3 questions: "
                     r"b, c"):
    squad_metrics.evaluate_v2(dataset, {"a": "paris"})
