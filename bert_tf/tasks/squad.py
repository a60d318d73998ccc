"""run_squad's training, prediction and answer extraction, as the original.

`write_predictions` turns the start/end logits of every window into answer
texts: the `n_best_size` best starts and ends of each window, kept when both
lie in the window's document part, the start's window is its max-context
window, and the span is at most `max_answer_length` tokens; the spans are
projected back to the original text by `get_final_text`. For SQuAD v2.0 the
null answer scores start_logit[0] + end_logit[0] of the window where that is
smallest, and "" is predicted when it beats the best non-null span by more
than `null_score_diff_threshold`.

With a SentencePiece tokenizer (ALBERT, `--spm_model_file`) the features are
ALBERT's (`bert_tf.data.squad_sentencepiece`) and a span's text is cut out of
the context by the character offsets of its pieces, as ALBERT's predictions;
the span head, the candidates and the null scoring stay the above.
ALBERT's v2.0 answer-verification head (`--squad_head=albert_v2`) has its
own loss and predictions in `squad_albert_v2`, which shares this module's
windows (`predict_windows`) and results (`write_eval_results`).

`model_fn`, `loss_fn` (the original (start + end cross-entropy) / 2) and
`predict` are the glue of run_squad.py around `Trainer`.
"""

import collections
import functools
import json
import math
import os
import random

from absl import logging
import tensorflow as tf

from bert_tf import file_io
from bert_tf import tokenization
from bert_tf.data import record_format
from bert_tf.data import squad as squad_data
from bert_tf.data import squad_sentencepiece
from bert_tf.modeling import BertSquad
from bert_tf.tasks import inference
from bert_tf.tasks import squad_metrics
from bert_tf.training import summaries

RawResult = collections.namedtuple("RawResult",
                                   ["unique_id", "start_logits", "end_logits"])

_PrelimPrediction = collections.namedtuple(
    "PrelimPrediction",
    ["feature_index", "start_index", "end_index", "start_logit", "end_logit"])
_NbestPrediction = collections.namedtuple(
    "NbestPrediction", ["text", "start_logit", "end_logit"])
# SQuAD 2.0's best non-null answer when no span is valid (the n-best list
# holds only the null answer): its logits make the null odds about 2e6, above
# any threshold, so the answer is "" (the original fails there).
_NO_SPAN = _NbestPrediction(text="", start_logit=-1e6, end_logit=-1e6)


def _get_best_indexes(logits, n_best_size):
  """Indexes of the `n_best_size` largest logits, best first (stable)."""
  index_and_score = sorted(enumerate(logits), key=lambda x: x[1], reverse=True)
  return [index for index, _ in index_and_score[:n_best_size]]


def compute_softmax(scores):
  """Softmax of a list of Python floats (in double precision)."""
  if not scores:
    return []
  max_score = max(scores)
  exp_scores = [math.exp(score - max_score) for score in scores]
  total_sum = sum(exp_scores)
  return [score / total_sum for score in exp_scores]


def get_final_text(pred_text, orig_text, do_lower_case, verbose_logging=False):
  """Projects a normalized predicted span back onto the original words.

  `pred_text` (e.g. "steve smith", from WordPieces) is found in the
  BasicTokenizer output of `orig_text` (e.g. "Steve Smith's"); with spaces
  removed the two texts align character by character, which maps the match
  back to `orig_text` ("Steve Smith"). When any step fails, `orig_text` is
  returned.

  Args:
    pred_text: the detokenized predicted text.
    orig_text: the original words of the span, joined by spaces.
    do_lower_case: as the tokenizer.
    verbose_logging: log why an alignment failed.

  Returns:
    The answer text.
  """

  def strip_spaces(text):
    ns_chars = []
    ns_to_s_map = collections.OrderedDict()
    for i, c in enumerate(text):
      if c == " ":
        continue
      ns_to_s_map[len(ns_chars)] = i
      ns_chars.append(c)
    return "".join(ns_chars), ns_to_s_map

  tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  tok_text = " ".join(tokenizer.tokenize(orig_text))

  start_position = tok_text.find(pred_text)
  if start_position == -1:
    if verbose_logging:
      logging.info("Unable to find text: '%s' in '%s'", pred_text, orig_text)
    return orig_text
  end_position = start_position + len(pred_text) - 1

  orig_ns_text, orig_ns_to_s_map = strip_spaces(orig_text)
  tok_ns_text, tok_ns_to_s_map = strip_spaces(tok_text)
  if len(orig_ns_text) != len(tok_ns_text):
    if verbose_logging:
      logging.info("Length not equal after stripping spaces: '%s' vs '%s'",
                   orig_ns_text, tok_ns_text)
    return orig_text

  tok_s_to_ns_map = {s: ns for ns, s in tok_ns_to_s_map.items()}

  def to_orig(position):
    ns_position = tok_s_to_ns_map.get(position)
    return None if ns_position is None else orig_ns_to_s_map.get(ns_position)

  orig_start_position = to_orig(start_position)
  if orig_start_position is None:
    if verbose_logging:
      logging.info("Couldn't map start position")
    return orig_text
  orig_end_position = to_orig(end_position)
  if orig_end_position is None:
    if verbose_logging:
      logging.info("Couldn't map end position")
    return orig_text
  return orig_text[orig_start_position:orig_end_position + 1]


def _detokenize(tokens):
  """WordPieces -> text: "##" pieces joined, whitespace collapsed."""
  tok_text = " ".join(tokens).replace(" ##", "").replace("##", "")
  return " ".join(tok_text.strip().split())


def wordpiece_answer_text(example, feature, start_index, end_index,
                          do_lower_case, verbose_logging=False):
  """The original's text of a predicted WordPiece span.

  Args:
    example: the `SquadExample`.
    feature: its `InputFeatures` window.
    start_index, end_index: token indexes of the span in the window.
    do_lower_case, verbose_logging: see `get_final_text`.

  Returns:
    The detokenized span projected onto the example's words.
  """
  tok_text = _detokenize(feature.tokens[start_index:end_index + 1])
  orig_doc_start = feature.token_to_orig_map[start_index]
  orig_doc_end = feature.token_to_orig_map[end_index]
  orig_text = " ".join(example.doc_tokens[orig_doc_start:orig_doc_end + 1])
  return get_final_text(tok_text, orig_text, do_lower_case, verbose_logging)


def windows_by_example(all_examples, all_features, all_results):
  """Each example with its windows and their results, in input order.

  Args:
    all_examples: list of examples.
    all_features: list of features (windows) with `example_index` and
      `unique_id`.
    all_results: list of raw results with `unique_id`.

  Yields:
    (example, windows): `windows` is the list of (feature, result) of the
    example's windows, in order.
  """
  features_of = collections.defaultdict(list)
  for feature in all_features:
    features_of[feature.example_index].append(feature)
  result_of = {result.unique_id: result for result in all_results}
  for example_index, example in enumerate(all_examples):
    yield example, [(feature, result_of[feature.unique_id])
                    for feature in features_of[example_index]]


def distinct_answers(prelim_predictions, n_best_size, answer_text,
                     is_null=None):
  """The best candidates whose answer texts are not repeats, best first.

  Args:
    prelim_predictions: the candidates, best first.
    n_best_size: how many to keep at most.
    answer_text: `fn(candidate)` -> its answer text.
    is_null: `fn(candidate)` -> whether it is the null answer, whose text is
      "" and which is kept without the repeat check (BERT's); None if no
      candidate is.

  Returns:
    A list of (candidate, text).
  """
  seen = set()
  kept = []
  for pred in prelim_predictions:
    if len(kept) >= n_best_size:
      break
    null = is_null is not None and is_null(pred)
    text = "" if null else answer_text(pred)
    if text in seen and not null:
      continue
    seen.add(text)
    kept.append((pred, text))
  return kept


def compute_predictions(all_examples, all_features, all_results, n_best_size,
                        max_answer_length, do_lower_case,
                        version_2_with_negative=False,
                        null_score_diff_threshold=0.0, verbose_logging=False,
                        answer_text_fn=None):
  """The answers, n-best lists and null odds of the original write_predictions.

  Args:
    all_examples: list of `SquadExample`.
    all_features: list of `InputFeatures` of those examples.
    all_results: list of `RawResult` (logits as lists of Python floats).
    n_best_size: start/end candidates per window, and n-best list length.
    max_answer_length: the longest answer in tokens.
    do_lower_case: as the tokenizer (for `get_final_text`).
    version_2_with_negative: consider the null answer.
    null_score_diff_threshold: predict "" when null score - best non-null
      score is larger.
    verbose_logging: log failed alignments.
    answer_text_fn: `fn(example, feature, start_index, end_index)` -> the
      text of a span; None for `wordpiece_answer_text` (ALBERT's features:
      `squad_sentencepiece.answer_text`).

  Returns:
    (predictions, nbest, null_odds): OrderedDicts by question id of the
    answer text, the n-best list (dicts with `text`, `probability`,
    `start_logit`, `end_logit`), and (v2.0; else empty) the score
    difference null - best non-null.
  """
  if answer_text_fn is None:
    answer_text_fn = functools.partial(wordpiece_answer_text,
                                       do_lower_case=do_lower_case,
                                       verbose_logging=verbose_logging)
  all_predictions = collections.OrderedDict()
  all_nbest_json = collections.OrderedDict()
  scores_diff_json = collections.OrderedDict()

  for example, windows in windows_by_example(all_examples, all_features,
                                             all_results):
    prelim_predictions = []
    # The smallest null score (start+end logits of [CLS]) over the windows.
    score_null = 1000000
    min_null_feature_index = 0
    null_start_logit = 0
    null_end_logit = 0
    for feature_index, (feature, result) in enumerate(windows):
      start_indexes = _get_best_indexes(result.start_logits, n_best_size)
      end_indexes = _get_best_indexes(result.end_logits, n_best_size)
      if version_2_with_negative:
        feature_null_score = result.start_logits[0] + result.end_logits[0]
        if feature_null_score < score_null:
          score_null = feature_null_score
          min_null_feature_index = feature_index
          null_start_logit = result.start_logits[0]
          null_end_logit = result.end_logits[0]
      for start_index in start_indexes:
        for end_index in end_indexes:
          # Spans must lie in the document part of the window, start in its
          # max-context window, and be at most max_answer_length long.
          if (start_index >= len(feature.tokens) or
              end_index >= len(feature.tokens) or
              start_index not in feature.token_to_orig_map or
              end_index not in feature.token_to_orig_map or
              not feature.token_is_max_context.get(start_index, False) or
              end_index < start_index or
              end_index - start_index + 1 > max_answer_length):
            continue
          prelim_predictions.append(_PrelimPrediction(
              feature_index=feature_index, start_index=start_index,
              end_index=end_index,
              start_logit=result.start_logits[start_index],
              end_logit=result.end_logits[end_index]))

    if version_2_with_negative:
      prelim_predictions.append(_PrelimPrediction(
          feature_index=min_null_feature_index, start_index=0, end_index=0,
          start_logit=null_start_logit, end_logit=null_end_logit))
    prelim_predictions = sorted(prelim_predictions,
                                key=lambda x: x.start_logit + x.end_logit,
                                reverse=True)

    nbest = [
        _NbestPrediction(text=text, start_logit=pred.start_logit,
                         end_logit=pred.end_logit)
        for pred, text in distinct_answers(
            prelim_predictions, n_best_size,
            lambda pred: answer_text_fn(
                example, windows[pred.feature_index][0], pred.start_index,
                pred.end_index),
            is_null=lambda pred: pred.start_index == 0)]

    if version_2_with_negative and all(entry.text for entry in nbest):
      nbest.append(_NbestPrediction(text="", start_logit=null_start_logit,
                                    end_logit=null_end_logit))
    # In rare cases no span is valid; a placeholder avoids a failure.
    if not nbest:
      nbest.append(_NbestPrediction(text="empty", start_logit=0.0,
                                    end_logit=0.0))

    total_scores = [entry.start_logit + entry.end_logit for entry in nbest]
    best_non_null_entry = next((entry for entry in nbest if entry.text),
                               _NO_SPAN)
    probs = compute_softmax(total_scores)
    nbest_json = []
    for i, entry in enumerate(nbest):
      output = collections.OrderedDict()
      output["text"] = entry.text
      output["probability"] = probs[i]
      output["start_logit"] = entry.start_logit
      output["end_logit"] = entry.end_logit
      nbest_json.append(output)

    if not version_2_with_negative:
      all_predictions[example.qas_id] = nbest_json[0]["text"]
    else:
      score_diff = (score_null - best_non_null_entry.start_logit -
                    best_non_null_entry.end_logit)
      scores_diff_json[example.qas_id] = score_diff
      if score_diff > null_score_diff_threshold:
        all_predictions[example.qas_id] = ""
      else:
        all_predictions[example.qas_id] = best_non_null_entry.text
    all_nbest_json[example.qas_id] = nbest_json
  return all_predictions, all_nbest_json, scores_diff_json


def write_predictions(all_examples, all_features, all_results, n_best_size,
                      max_answer_length, do_lower_case, output_prediction_file,
                      output_nbest_file, output_null_log_odds_file,
                      version_2_with_negative=False,
                      null_score_diff_threshold=0.0, verbose_logging=False,
                      answer_text_fn=None):
  """Writes predictions.json, nbest_predictions.json and (v2.0) null_odds.json.

  Args:
    all_examples, all_features, all_results, n_best_size, max_answer_length,
    do_lower_case, version_2_with_negative, null_score_diff_threshold,
    verbose_logging, answer_text_fn: see `compute_predictions`.
    output_prediction_file: path of the answers JSON.
    output_nbest_file: path of the n-best JSON.
    output_null_log_odds_file: path of the null odds JSON (v2.0 only).

  Returns:
    The `compute_predictions` triple.
  """
  logging.info("Writing predictions to: %s", output_prediction_file)
  logging.info("Writing nbest to: %s", output_nbest_file)
  predictions, nbest, null_odds = compute_predictions(
      all_examples, all_features, all_results, n_best_size, max_answer_length,
      do_lower_case, version_2_with_negative, null_score_diff_threshold,
      verbose_logging, answer_text_fn)
  outputs = [(output_prediction_file, predictions),
             (output_nbest_file, nbest)]
  if version_2_with_negative:
    outputs.append((output_null_log_odds_file, null_odds))
  write_json_files(outputs)
  return predictions, nbest, null_odds


def write_json_files(outputs):
  """Writes each value as the original's JSON (indent 4, final newline).

  Args:
    outputs: list of (path, JSON-serializable value); each file appears
      under its path when complete.
  """
  for path, value in outputs:
    with file_io.atomic_file(path) as writer:
      writer.write(json.dumps(value, indent=4) + "\n")


def has_gold_answers(dataset):
  """Whether a SQuAD `data` list can be scored.

  Args:
    dataset: the `data` list of a SQuAD JSON file.

  Returns:
    True when every question has `answers` and at least one is non-empty.
  """
  qas = [qa for article in dataset for p in article["paragraphs"]
         for qa in p["qas"]]
  return bool(qas) and all("answers" in qa for qa in qas) and any(
      qa["answers"] for qa in qas)


def evaluate_predictions(dataset, predictions, null_odds,
                         version_2_with_negative):
  """The official script's results for the written predictions.

  Args:
    dataset: the `data` list of the predict file.
    predictions: dict question id -> answer.
    null_odds: dict question id -> null odds (v2.0).
    version_2_with_negative: use the v2.0 script (with the null odds as its
      `--na-prob-file`), else v1.1.

  Returns:
    dict of the script's keys and values.
  """
  if version_2_with_negative:
    return squad_metrics.evaluate_v2(dataset, predictions, null_odds)
  return squad_metrics.evaluate_v1(dataset, predictions)


def span_loss(logits, positions):
  """run_squad's loss for one end: mean cross-entropy over sequence positions.

  Args:
    logits: float Tensor [batch, seq] (start or end logits).
    positions: int Tensor [batch], the gold positions (0 = [CLS] for no answer).

  Returns:
    The scalar loss.
  """
  return position_loss(tf.nn.log_softmax(logits, axis=-1), positions)


def position_loss(log_probs, positions):
  """Mean negative log-probability of the gold positions.

  Args:
    log_probs: float Tensor [batch, seq], log-probabilities over positions.
    positions: int Tensor [batch] (or [batch, 1]), the gold positions.

  Returns:
    The scalar loss.
  """
  one_hot = tf.one_hot(tf.reshape(positions, [-1]),
                       depth=tf.shape(log_probs)[-1], dtype=tf.float32)
  return -tf.reduce_mean(tf.reduce_sum(one_hot * log_probs, axis=-1))


def loss_fn(model, features, training):
  """The `Trainer` loss of run_squad.

  Args:
    model: a `BertSquad`.
    features: dict of a batch with `start_positions`, `end_positions`.
    training: whether dropout is active.

  Returns:
    (loss, {}): the original (start loss + end loss) / 2 (`span_loss`).
  """
  outputs = model(features, training=training)
  loss = (span_loss(outputs["start_logits"], features["start_positions"]) +
          span_loss(outputs["end_logits"], features["end_positions"])) / 2.0
  return loss, {}


def model_fn(config):
  """Returns the `Trainer` model_fn of run_squad."""
  return lambda: BertSquad(config)


def uses_sentencepiece(tokenizer):
  """Whether `tokenizer` is SentencePiece (ALBERT's features) or WordPiece."""
  return getattr(tokenizer, "sp_model", None) is not None


def read_examples(input_file, tokenizer, is_training,
                  version_2_with_negative=False):
  """The examples of a SQuAD file, read as the tokenizer's original does.

  Args:
    input_file: SQuAD JSON.
    tokenizer: a `FullTokenizer`.
    is_training, version_2_with_negative: see `read_squad_examples`.

  Returns:
    list of `SquadExample` (ALBERT's reader keeps every training answer).
  """
  if uses_sentencepiece(tokenizer):
    return squad_sentencepiece.read_squad_examples(
        input_file, is_training, version_2_with_negative)
  return squad_data.read_squad_examples(input_file, is_training,
                                        version_2_with_negative)


def convert_examples(examples, tokenizer, max_seq_length, doc_stride,
                     max_query_length, is_training, output_fn,
                     log_examples=20):
  """Windows examples into features: BERT's, or ALBERT's for SentencePiece.

  Args:
    examples: list of `SquadExample`.
    tokenizer: a `FullTokenizer` (its `do_lower_case` for ALBERT's).
    max_seq_length, doc_stride, max_query_length, is_training, output_fn,
      log_examples: see `squad_data.convert_examples_to_features`.

  Returns:
    The number of features produced.
  """
  if uses_sentencepiece(tokenizer):
    return squad_sentencepiece.convert_examples_to_features(
        examples, tokenizer, max_seq_length, doc_stride, max_query_length,
        is_training, output_fn, tokenizer.do_lower_case, log_examples)
  return squad_data.convert_examples_to_features(
      examples, tokenizer, max_seq_length, doc_stride, max_query_length,
      is_training, output_fn, log_examples)


def write_train_features(train_examples, tokenizer, output_file,
                         max_seq_length, doc_stride, max_query_length,
                         log_examples=20):
  """Shuffles (seed 12345) and windows the training set into TFRecords.

  Args:
    train_examples: the training `SquadExample`s (`read_examples` with
      `is_training=True`); not changed.
    tokenizer: a `FullTokenizer`.
    output_file: TFRecord path (`train.tf_record`), written under a
      temporary name and renamed when complete.
    max_seq_length, doc_stride, max_query_length: the window settings.
    log_examples: the features of this many first examples are logged.

  Returns:
    The number of features written.
  """
  train_examples = list(train_examples)
  # Pre-shuffled as the original, so that a small shuffle buffer suffices.
  random.Random(12345).shuffle(train_examples)
  writer = squad_data.FeatureWriter(output_file, is_training=True)
  convert_examples(
      train_examples, tokenizer, max_seq_length, doc_stride, max_query_length,
      is_training=True, output_fn=writer.process_feature,
      log_examples=log_examples)
  writer.close()
  return writer.num_features


def predict_windows(trainer, eval_examples, tokenizer, output_dir,
                    max_seq_length, doc_stride, max_query_length,
                    predict_batch_size, output_keys, sequence_outputs=(),
                    answer_verification=False, log_examples=20,
                    dynamic_padding=False):
  """Windows the examples into `eval.tf_record` and runs the model on it.

  Args:
    trainer: a `Trainer` holding the restored model.
    eval_examples: the `SquadExample`s of the predict file
      (`read_examples` with `is_training=False`).
    tokenizer: a `FullTokenizer`.
    output_dir: where `eval.tf_record` goes.
    max_seq_length, doc_stride, max_query_length: the window settings.
    predict_batch_size: batch size.
    output_keys: the model outputs to collect.
    sequence_outputs: those of `output_keys` with a sequence axis.
    answer_verification: feed `p_mask` (`BertSquadV2`).
    log_examples: the features of this many first examples are logged.
    dynamic_padding: run batches of similar lengths cut to their longest
      window (`data.dynamic_padding`); sequence outputs of the cut-off
      padding are `inference.CUT_OFF_LOGIT`, never among the best.

  Returns:
    (features, outputs): the examples' windows in order, and dict key ->
    numpy array over the windows of every output key and `unique_ids`.
  """
  eval_writer = squad_data.FeatureWriter(
      os.path.join(output_dir, "eval.tf_record"), is_training=False)
  eval_features = []

  def append_feature(feature):
    eval_features.append(feature)
    eval_writer.process_feature(feature)

  convert_examples(
      eval_examples, tokenizer, max_seq_length, doc_stride, max_query_length,
      is_training=False, output_fn=append_feature, log_examples=log_examples)
  eval_writer.close()

  logging.info("***** Running predictions *****")
  logging.info("  Num orig examples = %d", len(eval_examples))
  logging.info("  Num split examples = %d", len(eval_features))
  logging.info("  Batch size = %d", predict_batch_size)

  with record_format.corrupt_files_named([eval_writer.filename]):
    outputs = inference.predict_all(
        trainer.strategy, lambda features: trainer.model(features,
                                                         training=False),
        squad_data.squad_dataset(eval_writer.filename, max_seq_length,
                                 predict_batch_size, is_training=False,
                                 drop_remainder=False,
                                 dynamic_padding=dynamic_padding,
                                 answer_verification=answer_verification),
        output_keys=output_keys, feature_keys=("unique_ids",),
        sequence_outputs=sequence_outputs, seq_length=max_seq_length)
  return eval_features, outputs


def gold_dataset(predict_file):
  """The `data` list of `predict_file` if it can be scored, else None (logged)."""
  dataset = squad_data.read_squad_data(predict_file)
  if not has_gold_answers(dataset):
    logging.info("%s has no gold answers: not evaluated", predict_file)
    return None
  return dataset


def write_eval_results(trainer, output_dir, results, version_2_with_negative):
  """Writes and logs `squad_eval_results.json` (the official script's keys).

  The results are also TensorBoard scalars under `output_dir/eval` at the
  global step (written by the chief).

  Args:
    trainer: the `Trainer` that predicted.
    output_dir: where the file goes.
    results: dict of the evaluation results.
    version_2_with_negative: which SQuAD version was scored (for the log).
  """
  with file_io.atomic_file(
      os.path.join(output_dir, "squad_eval_results.json")) as writer:
    writer.write(json.dumps(results, indent=2) + "\n")
  logging.info("***** SQuAD %s eval results *****",
               "v2.0" if version_2_with_negative else "v1.1")
  for key, value in results.items():
    logging.info("  %s = %s", key, value)
  if trainer.is_chief:
    summaries.write_eval_scalars(output_dir, results,
                                 step=int(trainer.global_step.numpy()))


def predict(trainer, predict_file, eval_examples, tokenizer, output_dir,
            max_seq_length, doc_stride, max_query_length, predict_batch_size,
            n_best_size, max_answer_length, do_lower_case,
            version_2_with_negative=False, null_score_diff_threshold=0.0,
            verbose_logging=False, log_examples=20, dynamic_padding=False):
  """Predicts the answers of `predict_file` and writes the original outputs.

  Writes `eval.tf_record`, `predictions.json`, `nbest_predictions.json`,
  `null_odds.json` (v2.0) and, when the file has gold answers,
  `squad_eval_results.json` (the official script's results), also as
  TensorBoard scalars under `output_dir/eval` at the global step.

  Args:
    trainer: a `Trainer` holding the restored `BertSquad`.
    predict_file: SQuAD JSON (its gold answers, if any, are scored).
    eval_examples: its `SquadExample`s (`read_examples`).
    tokenizer: a `FullTokenizer`.
    output_dir: where the files go.
    max_seq_length, doc_stride, max_query_length: the window settings.
    predict_batch_size: batch size.
    n_best_size, max_answer_length, do_lower_case, version_2_with_negative,
    null_score_diff_threshold, verbose_logging: see `compute_predictions`.
    log_examples, dynamic_padding: see `predict_windows`.

  Returns:
    The evaluation results dict, or None without gold answers.
  """
  eval_features, outputs = predict_windows(
      trainer, eval_examples, tokenizer, output_dir, max_seq_length,
      doc_stride, max_query_length, predict_batch_size,
      ("start_logits", "end_logits"),
      sequence_outputs=("start_logits", "end_logits"),
      log_examples=log_examples, dynamic_padding=dynamic_padding)
  all_results = [
      RawResult(unique_id=int(unique_id),
                start_logits=[float(x) for x in start.flat],
                end_logits=[float(x) for x in end.flat])
      for unique_id, start, end in zip(outputs["unique_ids"],
                                       outputs["start_logits"],
                                       outputs["end_logits"])]
  predictions, _, null_odds = write_predictions(
      eval_examples, eval_features, all_results, n_best_size,
      max_answer_length, do_lower_case,
      os.path.join(output_dir, "predictions.json"),
      os.path.join(output_dir, "nbest_predictions.json"),
      os.path.join(output_dir, "null_odds.json"), version_2_with_negative,
      null_score_diff_threshold, verbose_logging,
      squad_sentencepiece.answer_text if uses_sentencepiece(tokenizer)
      else None)

  dataset = gold_dataset(predict_file)
  if dataset is None:
    return None
  results = evaluate_predictions(dataset, predictions, null_odds,
                                 version_2_with_negative)
  write_eval_results(trainer, output_dir, results, version_2_with_negative)
  return results
