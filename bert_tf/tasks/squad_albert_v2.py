"""ALBERT's SQuAD v2.0 with answer verification (run_squad.py --squad_head=albert_v2).

google-research/albert's `run_squad_v2.py` (`squad_utils.v2_model_fn_builder`,
`accumulate_predictions_v2`, `write_predictions_v2`, `evaluate_v2`) on
ALBERT's SentencePiece features (`bert_tf.data.squad_sentencepiece`, with
`p_mask`), with `BertSquadV2` (`heads.SquadV2Head`):

- Loss: (start + end) / 2 + answer class / 2, where start and end are the
  mean negative log-probabilities of the gold positions (the end conditioned
  on the gold start; an impossible window's positions are 0, [CLS]) and the
  answer class is the mean sigmoid cross-entropy of `cls_logits` against the
  window's `is_impossible`.
- Predictions: each window gives `start_n_top` starts with `end_n_top` ends
  each; a candidate is kept when both lie in the window's document part, the
  start's window is its max-context window, the end is not before the start
  and the span has at most `max_answer_length` pieces. The candidates of all
  windows of a question are sorted by start + end log-probability; the
  `n_best_size` first distinct texts (cut out of the context by the pieces'
  character offsets) make the n-best list (`text`, `probability`,
  `start_log_prob`, `end_log_prob`), with ("", -1e6, -1e6) when there is
  none. The null odds of a question are the smallest `cls_logits` of its
  windows (`null_odds.json`); the answer is the n-best list's first text
  when the null odds are below `null_score_diff_threshold` (or with no
  threshold), else "".
- Evaluation: with gold answers, ALBERT's `evaluate_v2` first predicts with
  no threshold, takes the official script's `best_f1_thresh` over the null
  odds as the threshold, predicts again with it and scores that
  (`squad_eval_results.json`, with `null_score_diff_threshold`).

ALBERT averages the log-probabilities of a span seen several times in one
window over repeated accumulations (several checkpoints); one pass sees each
(start, end) of a window once, so its averages are the values themselves.
"""

import collections
import os

from absl import logging
import tensorflow as tf

from bert_tf.data import squad_sentencepiece
from bert_tf.modeling import BertSquadV2
from bert_tf.tasks import squad
from bert_tf.tasks import squad_metrics

RawResultV2 = collections.namedtuple(
    "RawResultV2",
    ["unique_id", "start_top_log_probs", "start_top_index",
     "end_top_log_probs", "end_top_index", "cls_logits"])

# The model outputs prediction reads.
OUTPUT_KEYS = ("start_top_log_probs", "start_top_index", "end_top_log_probs",
               "end_top_index", "cls_logits")

_PrelimPrediction = collections.namedtuple(
    "PrelimPrediction",
    ["feature_index", "start_index", "end_index", "start_log_prob",
     "end_log_prob"])
_NbestPrediction = collections.namedtuple(
    "NbestPrediction", ["text", "start_log_prob", "end_log_prob"])

# The null odds of a question without windows, and the log-probabilities of
# the n-best placeholder when no candidate is valid (ALBERT's values).
_NO_WINDOW_NULL_ODDS = 1e6
_EMPTY_LOG_PROB = -1e6


def model_fn(config, start_n_top, end_n_top, dropout_prob):
  """Returns the `Trainer` model_fn: a `BertSquadV2`."""
  return lambda: BertSquadV2(config, start_n_top, end_n_top, dropout_prob)


def compute_losses(outputs, features):
  """ALBERT's run_squad_v2 losses.

  Args:
    outputs: the training outputs of `BertSquadV2` (`start_log_probs`,
      `end_log_probs` [batch, seq], `cls_logits` [batch]).
    features: dict with `start_positions`, `end_positions`, `is_impossible`
      [batch].

  Returns:
    (total, span, answer_class): scalars; span = (start + end) / 2, answer
    class = mean sigmoid cross-entropy, total = span + answer class / 2.
  """
  span = (squad.position_loss(outputs["start_log_probs"],
                              features["start_positions"]) +
          squad.position_loss(outputs["end_log_probs"],
                              features["end_positions"])) * 0.5
  labels = tf.cast(tf.reshape(features["is_impossible"], [-1]), tf.float32)
  answer_class = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
      labels=labels, logits=outputs["cls_logits"]))
  return span + answer_class * 0.5, span, answer_class


def loss_fn(model, features, training):
  """The `Trainer` loss: `compute_losses` on the model's training outputs.

  Args:
    model: a `BertSquadV2`.
    features: a training batch (with the gold positions, so that the end
      layer reads the gold start).
    training: whether dropout is active.

  Returns:
    (loss, {"span_loss", "answer_class_loss"}).
  """
  total, span, answer_class = compute_losses(model(features,
                                                   training=training),
                                             features)
  return total, {"span_loss": span, "answer_class_loss": answer_class}


def raw_results(outputs):
  """The `RawResultV2` of every window from `predict_all`'s outputs.

  Args:
    outputs: dict of numpy arrays with `unique_ids` and `OUTPUT_KEYS`.

  Returns:
    list of `RawResultV2` (Python floats and ints), in window order.
  """
  return [
      RawResultV2(
          unique_id=int(unique_id),
          start_top_log_probs=[float(x) for x in start_lp.flat],
          start_top_index=[int(x) for x in start_index.flat],
          end_top_log_probs=[float(x) for x in end_lp.flat],
          end_top_index=[int(x) for x in end_index.flat],
          cls_logits=float(cls))
      for unique_id, start_lp, start_index, end_lp, end_index, cls in zip(
          outputs["unique_ids"], outputs["start_top_log_probs"],
          outputs["start_top_index"], outputs["end_top_log_probs"],
          outputs["end_top_index"], outputs["cls_logits"])]


def _window_candidates(feature, result, max_answer_length, start_n_top,
                       end_n_top):
  """The valid (start, end, start_log_prob, end_log_prob) of one window.

  Args:
    feature: a `squad_sentencepiece.SentencePieceFeatures` window.
    result: its `RawResultV2`.
    max_answer_length: the longest span in pieces.
    start_n_top, end_n_top: the beam sizes the model was run with.

  Returns:
    list of tuples, in ALBERT's order (start rank, then end rank).
  """
  candidates = []
  for i in range(start_n_top):
    start_index = result.start_top_index[i]
    for j in range(end_n_top):
      end_index = result.end_top_index[i * end_n_top + j]
      # Both in the document part (ALBERT: offsets past the [SEP] after
      # the question, within the window's pieces), the start in its
      # max-context window, a span of 1 to max_answer_length pieces.
      if (start_index not in feature.token_to_orig_map or
          end_index not in feature.token_to_orig_end_map or
          not feature.token_is_max_context.get(start_index, False) or
          end_index < start_index or
          end_index - start_index + 1 > max_answer_length):
        continue
      candidates.append((start_index, end_index,
                         result.start_top_log_probs[i],
                         result.end_top_log_probs[i * end_n_top + j]))
  return candidates


def compute_predictions(all_examples, all_features, all_results, n_best_size,
                        max_answer_length, start_n_top, end_n_top,
                        null_score_diff_threshold=None):
  """The answers, n-best lists and null odds of ALBERT's write_predictions_v2.

  Args:
    all_examples: list of `SquadExample` (with `paragraph_text`).
    all_features: list of `SentencePieceFeatures` of those examples.
    all_results: list of `RawResultV2`.
    n_best_size: n-best list length.
    max_answer_length: the longest answer in pieces.
    start_n_top, end_n_top: the beam sizes the model was run with.
    null_score_diff_threshold: predict "" when the null odds are at least
      this; None always predicts the best span (ALBERT's first pass).

  Returns:
    (predictions, nbest, null_odds): OrderedDicts by question id of the
    answer text, the n-best list (dicts with `text`, `probability`,
    `start_log_prob`, `end_log_prob`) and the null odds.
  """
  all_nbest_json = collections.OrderedDict()
  null_odds = collections.OrderedDict()
  for example, windows in squad.windows_by_example(all_examples, all_features,
                                                   all_results):
    score_null = _NO_WINDOW_NULL_ODDS
    prelim_predictions = []
    for feature_index, (feature, result) in enumerate(windows):
      score_null = min(score_null, result.cls_logits)
      prelim_predictions.extend(
          _PrelimPrediction(feature_index, *candidate)
          for candidate in _window_candidates(
              feature, result, max_answer_length, start_n_top, end_n_top))
    prelim_predictions.sort(key=lambda x: x.start_log_prob + x.end_log_prob,
                            reverse=True)

    nbest = [
        _NbestPrediction(text, pred.start_log_prob, pred.end_log_prob)
        for pred, text in squad.distinct_answers(
            prelim_predictions, n_best_size,
            lambda pred: squad_sentencepiece.answer_text(
                example, windows[pred.feature_index][0], pred.start_index,
                pred.end_index))]
    if not nbest:
      nbest.append(_NbestPrediction("", _EMPTY_LOG_PROB, _EMPTY_LOG_PROB))

    probs = squad.compute_softmax(
        [entry.start_log_prob + entry.end_log_prob for entry in nbest])
    all_nbest_json[example.qas_id] = [
        collections.OrderedDict([
            ("text", entry.text), ("probability", prob),
            ("start_log_prob", entry.start_log_prob),
            ("end_log_prob", entry.end_log_prob)])
        for entry, prob in zip(nbest, probs)]
    null_odds[example.qas_id] = score_null
  return (answers(all_nbest_json, null_odds, null_score_diff_threshold),
          all_nbest_json, null_odds)


def answers(nbest, null_odds, null_score_diff_threshold):
  """Each question's answer: its n-best list's first text, or "" by the odds.

  Args:
    nbest: OrderedDict question id -> n-best list (`compute_predictions`).
    null_odds: OrderedDict question id -> null odds.
    null_score_diff_threshold: "" when the null odds are at least this; None
      never.

  Returns:
    OrderedDict question id -> answer text.
  """
  return collections.OrderedDict(
      (qas_id, entries[0]["text"]
       if null_score_diff_threshold is None or
       null_odds[qas_id] < null_score_diff_threshold else "")
      for qas_id, entries in nbest.items())


def best_f1_threshold(dataset, nbest, null_odds):
  """ALBERT's threshold: the official best-F1 threshold over the null odds.

  Args:
    dataset: the `data` list of the predict file, with gold answers.
    nbest, null_odds: of `compute_predictions`.

  Returns:
    `best_f1_thresh` of the official v2.0 evaluation of the answers given
    without a threshold.
  """
  return squad_metrics.evaluate_v2(dataset, answers(nbest, null_odds, None),
                                   null_odds)["best_f1_thresh"]


def predict(trainer, predict_file, examples, tokenizer, output_dir,
            max_seq_length, doc_stride, max_query_length, predict_batch_size,
            n_best_size, max_answer_length, start_n_top, end_n_top,
            null_score_diff_threshold=None, log_examples=20,
            dynamic_padding=False):
  """Predicts with `BertSquadV2` and writes ALBERT's outputs.

  Writes `eval.tf_record`, `predictions.json`, `nbest_predictions.json`,
  `null_odds.json` and, when the file has gold answers,
  `squad_eval_results.json`: the official v2.0 results of the predictions
  written, plus `null_score_diff_threshold`, the threshold used (also as
  TensorBoard scalars under `output_dir/eval`).

  Args:
    trainer: a `Trainer` holding the restored `BertSquadV2`.
    predict_file: SQuAD JSON (its gold answers, if any, are scored).
    examples: its `SquadExample`s (`squad.read_examples`).
    tokenizer: a SentencePiece `FullTokenizer` (ALBERT's features).
    output_dir: where the files go.
    max_seq_length, doc_stride, max_query_length: the window settings.
    predict_batch_size: batch size.
    n_best_size, max_answer_length, start_n_top, end_n_top: see
      `compute_predictions`.
    null_score_diff_threshold: the threshold on the null odds; None for
      ALBERT's `best_f1_threshold` on the gold answers (or, without them,
      0.0: a "no answer" probability of 1/2).
    log_examples, dynamic_padding: see
      `squad.predict_windows` (the beams are positions in the window, the
      same in a batch cut to its longest window).

  Returns:
    The evaluation results dict, or None without gold answers.
  """
  features, outputs = squad.predict_windows(
      trainer, examples, tokenizer, output_dir, max_seq_length,
      doc_stride, max_query_length, predict_batch_size, OUTPUT_KEYS,
      answer_verification=True, log_examples=log_examples,
      dynamic_padding=dynamic_padding)
  # The n-best lists and null odds do not depend on the threshold: computed
  # once, for ALBERT's threshold search and for the answers.
  _, nbest, null_odds = compute_predictions(
      examples, features, raw_results(outputs), n_best_size,
      max_answer_length, start_n_top, end_n_top)
  dataset = squad.gold_dataset(predict_file)
  threshold = null_score_diff_threshold
  if threshold is None:
    threshold = 0.0 if dataset is None else best_f1_threshold(
        dataset, nbest, null_odds)
    logging.info("Null odds threshold: %s", threshold)
  predictions = answers(nbest, null_odds, threshold)
  logging.info("Writing predictions, nbest and null odds to %s", output_dir)
  squad.write_json_files([
      (os.path.join(output_dir, "predictions.json"), predictions),
      (os.path.join(output_dir, "nbest_predictions.json"), nbest),
      (os.path.join(output_dir, "null_odds.json"), null_odds)])
  if dataset is None:
    return None
  evaluation = squad_metrics.evaluate_v2(dataset, predictions, null_odds)
  evaluation["null_score_diff_threshold"] = threshold
  squad.write_eval_results(trainer, output_dir, evaluation, True)
  return evaluation
