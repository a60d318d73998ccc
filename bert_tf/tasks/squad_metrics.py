"""The official SQuAD v1.1 and v2.0 evaluation, to the scripts' definitions.

Both versions normalize answers the same way (lower case, no punctuation, no
articles a/an/the, single spaces) and score a prediction against each gold
answer with exact match and token F1, keeping the best.

- v1.1 (`evaluate_v1`): every question counts (a missing prediction scores
  0); `exact_match` and `f1` in percent.
- v2.0 (`evaluate_v2`): gold answers that normalize to "" are dropped, and a
  question without gold answers expects "". With null odds (`na_probs`, the
  `null_odds.json` of run_squad), a question whose odds exceed
  `na_prob_thresh` (1.0 by default, as the script) counts as answered "".
  Reports `exact`, `f1`, `total`, the `HasAns_*` and `NoAns_*` splits, and
  with null odds the best threshold over them: `best_exact`,
  `best_exact_thresh`, `best_f1`, `best_f1_thresh`. Every question needs a
  prediction (the script fails otherwise).
"""

import collections
import re
import string

from absl import logging

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s):
  """Lower case, remove punctuation, articles and extra whitespace."""
  s = s.lower()
  s = "".join(ch for ch in s if ch not in _PUNCTUATION)
  s = _ARTICLES.sub(" ", s)
  return " ".join(s.split())


def _get_tokens(s):
  return normalize_answer(s).split() if s else []


def _token_f1(gold_toks, pred_toks):
  """Token-overlap F1 of two token lists (0 when they share no token)."""
  common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
  num_same = sum(common.values())
  if num_same == 0:
    return 0
  precision = 1.0 * num_same / len(pred_toks)
  recall = 1.0 * num_same / len(gold_toks)
  return (2 * precision * recall) / (precision + recall)


# ----------------------------------------------------------------- v1.1 --


def f1_score_v1(prediction, ground_truth):
  """v1.1 token F1 of a prediction against one gold answer."""
  return _token_f1(normalize_answer(ground_truth).split(),
                   normalize_answer(prediction).split())


def exact_match_score_v1(prediction, ground_truth):
  """v1.1 exact match (bool) of a prediction against one gold answer."""
  return normalize_answer(prediction) == normalize_answer(ground_truth)


def evaluate_v1(dataset, predictions):
  """The v1.1 script's `evaluate`.

  Args:
    dataset: the `data` list of a SQuAD JSON file.
    predictions: dict question id -> predicted text.

  Returns:
    dict with `exact_match` and `f1` (percent over all questions).
  """
  f1 = exact_match = total = 0
  for article in dataset:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        total += 1
        if qa["id"] not in predictions:
          logging.warning("Unanswered question %s will receive score 0.",
                          qa["id"])
          continue
        ground_truths = [a["text"] for a in qa["answers"]]
        prediction = predictions[qa["id"]]
        exact_match += max(exact_match_score_v1(prediction, gt)
                           for gt in ground_truths)
        f1 += max(f1_score_v1(prediction, gt) for gt in ground_truths)
  return {"exact_match": 100.0 * exact_match / total,
          "f1": 100.0 * f1 / total}


# ----------------------------------------------------------------- v2.0 --


def compute_exact(a_gold, a_pred):
  """v2.0 exact match (0/1) of a prediction against one gold answer."""
  return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold, a_pred):
  """v2.0 token F1; an empty side scores 1 if both are empty, else 0."""
  gold_toks = _get_tokens(a_gold)
  pred_toks = _get_tokens(a_pred)
  if not gold_toks or not pred_toks:
    return int(gold_toks == pred_toks)
  return _token_f1(gold_toks, pred_toks)


def make_qid_to_has_ans(dataset):
  """dict question id -> whether it has gold answers."""
  return {qa["id"]: bool(qa["answers"]) for article in dataset
          for p in article["paragraphs"] for qa in p["qas"]}


def get_raw_scores(dataset, preds):
  """Best exact and F1 per question over its gold answers (v2.0).

  Args:
    dataset: the `data` list.
    preds: dict question id -> predicted text.

  Returns:
    (exact_scores, f1_scores): dicts question id -> score, for the
    questions that have a prediction.
  """
  exact_scores = {}
  f1_scores = {}
  for article in dataset:
    for p in article["paragraphs"]:
      for qa in p["qas"]:
        qid = qa["id"]
        gold_answers = [a["text"] for a in qa["answers"]
                        if normalize_answer(a["text"])]
        if not gold_answers:
          gold_answers = [""]
        if qid not in preds:
          logging.warning("Missing prediction for %s", qid)
          continue
        a_pred = preds[qid]
        exact_scores[qid] = max(compute_exact(a, a_pred) for a in gold_answers)
        f1_scores[qid] = max(compute_f1(a, a_pred) for a in gold_answers)
  return exact_scores, f1_scores


def apply_no_ans_threshold(scores, na_probs, qid_to_has_ans, na_prob_thresh):
  """Scores with "no answer" predicted where the null odds exceed the thresh."""
  new_scores = {}
  for qid, s in scores.items():
    if na_probs[qid] > na_prob_thresh:
      new_scores[qid] = float(not qid_to_has_ans[qid])
    else:
      new_scores[qid] = s
  return new_scores


def make_eval_dict(exact_scores, f1_scores, qid_list=None):
  """Percent exact and F1 over `qid_list` (default all) and the count."""
  if not qid_list:
    total = len(exact_scores)
    exact = sum(exact_scores.values())
    f1 = sum(f1_scores.values())
  else:
    total = len(qid_list)
    exact = sum(exact_scores[k] for k in qid_list)
    f1 = sum(f1_scores[k] for k in qid_list)
  return collections.OrderedDict([("exact", 100.0 * exact / total),
                                  ("f1", 100.0 * f1 / total),
                                  ("total", total)])


def find_best_thresh(preds, scores, na_probs, qid_to_has_ans):
  """The score with the best null-odds threshold, and that threshold.

  Questions are taken in increasing null odds; moving the threshold past one
  turns its prediction into "no answer" (gaining its score if it has an
  answer, losing 1 if it was unanswerable but answered).

  Args:
    preds: dict question id -> predicted text.
    scores: dict question id -> raw exact or F1 score.
    na_probs: dict question id -> null odds.
    qid_to_has_ans: dict question id -> bool.

  Returns:
    (best score in percent of the scored questions, threshold).
  """
  num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
  cur_score = num_no_ans
  best_score = cur_score
  best_thresh = 0.0
  for qid in sorted(na_probs, key=lambda k: na_probs[k]):
    if qid not in scores:
      continue
    if qid_to_has_ans[qid]:
      diff = scores[qid]
    else:
      diff = -1 if preds[qid] else 0
    cur_score += diff
    if cur_score > best_score:
      best_score = cur_score
      best_thresh = na_probs[qid]
  return 100.0 * best_score / len(scores), best_thresh


def evaluate_v2(dataset, preds, na_probs=None, na_prob_thresh=1.0):
  """The v2.0 script's output for `preds` (and `--na-prob-file`).

  Args:
    dataset: the `data` list.
    preds: dict question id -> predicted text ("" for no answer).
    na_probs: dict question id -> null odds (run_squad's `null_odds.json`),
      or None (all 0, and no best thresholds), as the script without
      `--na-prob-file`.
    na_prob_thresh: the script's `--na-prob-thresh`.

  Returns:
    An OrderedDict with `exact`, `f1`, `total`, `HasAns_exact`, `HasAns_f1`,
    `HasAns_total`, `NoAns_exact`, `NoAns_f1`, `NoAns_total` (the splits
    present in the data) and, with `na_probs`, `best_exact`,
    `best_exact_thresh`, `best_f1`, `best_f1_thresh`.

  Raises:
    ValueError: naming the questions without a prediction.
  """
  use_na_probs = na_probs is not None
  if not use_na_probs:
    na_probs = {k: 0.0 for k in preds}
  qid_to_has_ans = make_qid_to_has_ans(dataset)
  missing = [qid for qid in qid_to_has_ans if qid not in preds]
  if missing:
    # The official script fails (KeyError) in this case too.
    raise ValueError("No prediction for %d of %d questions: %s" %
                     (len(missing), len(qid_to_has_ans),
                      ", ".join(missing[:10])))
  has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
  no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
  exact_raw, f1_raw = get_raw_scores(dataset, preds)
  exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans,
                                        na_prob_thresh)
  f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans,
                                     na_prob_thresh)
  out_eval = make_eval_dict(exact_thresh, f1_thresh)
  for prefix, qids in (("HasAns", has_ans_qids), ("NoAns", no_ans_qids)):
    if qids:
      for key, value in make_eval_dict(exact_thresh, f1_thresh,
                                       qid_list=qids).items():
        out_eval["%s_%s" % (prefix, key)] = value
  if use_na_probs:
    best_exact, exact_thresh = find_best_thresh(preds, exact_raw, na_probs,
                                                qid_to_has_ans)
    best_f1, f1_thresh = find_best_thresh(preds, f1_raw, na_probs,
                                          qid_to_has_ans)
    out_eval["best_exact"] = best_exact
    out_eval["best_exact_thresh"] = exact_thresh
    out_eval["best_f1"] = best_f1
    out_eval["best_f1_thresh"] = f1_thresh
  return out_eval
