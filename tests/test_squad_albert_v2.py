"""ALBERT's SQuAD v2.0 answer-verification head and predictions (`--squad_head=albert_v2`).

The head (`BertSquadV2`) is checked against a float64 numpy transcription of
google-research/albert's `squad_utils.create_v2_model` graph, written in its
own layout (sequence-major [seq, batch, hidden], one-hot einsums, tiles), on
the original ALBERT's sequence outputs (`original_albert_small/io.npz`), with
the encoder loaded from the original checkpoint and the head's variables
written under ALBERT's names into a TF1 checkpoint; the losses against
`v2_model_fn_builder`'s. The predictions are checked against a transcription
of its `accumulate_predictions_v2`, `write_predictions_v2` and `evaluate_v2`
on ALBERT's features of the SQuAD v2.0 sample with crafted beams (ties,
invalid candidates, windows that overlap, a question without a valid span).
"""

import collections
import math
import re

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import tokenization
from bert_tf.data import squad as squad_data
from bert_tf.data import squad_sentencepiece
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertSquadV2
from bert_tf.tasks import squad_albert_v2
from bert_tf.tasks import squad_metrics
from sentencepiece_models import train_albert_spm
from sentencepiece_models import write_squad_texts
from test_run_squad import _load
from test_run_squad import run_squad
from test_run_squad_albert import tiny_albert_flags

START_N_TOP, END_N_TOP = 3, 2


def _head_names(h):
  """ALBERT's run_squad_v2 head variables (create_v2_model's scopes) -> shapes."""
  return {
      "start_logits/dense/kernel": (h, 1),
      "start_logits/dense/bias": (1,),
      "end_logits/dense_0/kernel": (2 * h, h),
      "end_logits/dense_0/bias": (h,),
      "end_logits/LayerNorm/gamma": (h,),
      "end_logits/LayerNorm/beta": (h,),
      "end_logits/dense_1/kernel": (h, 1),
      "end_logits/dense_1/bias": (1,),
      "answer_class/dense_0/kernel": (2 * h, h),
      "answer_class/dense_0/bias": (h,),
      "answer_class/dense_1/kernel": (h, 1),
  }


# ---------------------------------------------------------------------------
# create_v2_model and the v2 losses, transcribed to float64 numpy.


def _dense(x, w, name, bias=True):
  y = x @ w[name + "/kernel"]
  return y + w[name + "/bias"] if bias else y


def _layer_norm(x, w, name):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-12) * w[name + "/gamma"] + w[
      name + "/beta"]


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _top_k(x, k):
  index = np.argsort(-x, axis=-1, kind="stable")[..., :k]
  return np.take_along_axis(x, index, -1), index


def _albert_v2_model(seq_output, p_mask, w, start_positions=None):
  """create_v2_model after the encoder: training with start_positions."""
  output = np.transpose(seq_output, [1, 0, 2])  # [L, B, H]
  seq, bsz, _ = output.shape
  start_logits = _dense(output, w, "start_logits/dense")[..., 0].T  # [B, L]
  start_masked = start_logits * (1 - p_mask) - 1e30 * p_mask
  start_log_probs = _log_softmax(start_masked)
  out = {}
  if start_positions is not None:
    start_index = np.eye(seq)[start_positions]  # [B, L]
    start_features = np.einsum("lbh,bl->bh", output, start_index)
    start_features = np.tile(start_features[None], [seq, 1, 1])
    end = np.tanh(_dense(np.concatenate([output, start_features], -1), w,
                         "end_logits/dense_0"))
    end = _dense(_layer_norm(end, w, "end_logits/LayerNorm"), w,
                 "end_logits/dense_1")[..., 0].T
    out["start_log_probs"] = start_log_probs
    out["end_log_probs"] = _log_softmax(end * (1 - p_mask) - 1e30 * p_mask)
  else:
    start_top_log_probs, start_top_index = _top_k(start_log_probs,
                                                  START_N_TOP)
    start_index = np.eye(seq)[start_top_index]  # [B, K, L]
    start_features = np.einsum("lbh,bkl->bkh", output, start_index)
    end_input = np.tile(output[:, :, None], [1, 1, START_N_TOP, 1])
    start_features = np.tile(start_features[None], [seq, 1, 1, 1])
    end = np.tanh(_dense(np.concatenate([end_input, start_features], -1), w,
                         "end_logits/dense_0"))
    end = _dense(_layer_norm(end, w, "end_logits/LayerNorm"), w,
                 "end_logits/dense_1")
    end = np.transpose(np.reshape(end, [seq, -1, START_N_TOP]), [1, 2, 0])
    end_log_probs = _log_softmax(end * (1 - p_mask[:, None]) -
                                 1e30 * p_mask[:, None])
    end_top_log_probs, end_top_index = _top_k(end_log_probs, END_N_TOP)
    out.update(
        start_top_log_probs=start_top_log_probs,
        start_top_index=start_top_index,
        end_top_log_probs=end_top_log_probs.reshape(
            [-1, START_N_TOP * END_N_TOP]),
        end_top_index=end_top_index.reshape([-1, START_N_TOP * END_N_TOP]))
  cls_feature = np.einsum("lbh,bl->bh", output, np.eye(seq)[np.zeros(
      bsz, np.int64)])
  start_p = np.exp(start_masked - start_masked.max(-1, keepdims=True))
  start_p /= start_p.sum(-1, keepdims=True)
  start_feature = np.einsum("lbh,bl->bh", output, start_p)
  ans = np.tanh(_dense(np.concatenate([start_feature, cls_feature], -1), w,
                       "answer_class/dense_0"))
  out["cls_logits"] = _dense(ans, w, "answer_class/dense_1", bias=False)[:, 0]
  return out


def _albert_v2_loss(out, start_positions, end_positions, is_impossible):
  """v2_model_fn_builder's TRAIN loss."""
  rows = np.arange(len(start_positions))
  start_loss = -out["start_log_probs"][rows, start_positions].mean()
  end_loss = -out["end_log_probs"][rows, end_positions].mean()
  logits, labels = out["cls_logits"], is_impossible.astype(np.float64)
  # sigmoid_cross_entropy_with_logits, its stable form.
  bce = np.maximum(logits, 0) - logits * labels + np.log1p(
      np.exp(-np.abs(logits)))
  return (start_loss + end_loss) * 0.5 + bce.mean() * 0.5


# ---------------------------------------------------------------------------
# The head on the original ALBERT's outputs.


@pytest.fixture(scope="module")
def albert(fixtures_dir, tmp_path_factory):
  """BertSquadV2 loaded by name from original ALBERT + a head under ALBERT's names."""
  root = fixtures_dir / "original_albert_small"
  config = BertConfig.from_json_file(str(root / "albert_config.json"))
  io = np.load(root / "io.npz")
  reader = tf.train.load_checkpoint(str(root / "model.ckpt-best"))
  tensors = {name: reader.get_tensor(name)
             for name in reader.get_variable_to_shape_map()}
  rng = np.random.RandomState(7)
  head = {name: (rng.normal(0, 0.5, shape) if not name.endswith("gamma")
                 else 1 + rng.normal(0, 0.2, shape)).astype(np.float32)
          for name, shape in _head_names(config.hidden_size).items()}
  prefix = str(tmp_path_factory.mktemp("albert_v2") / "model.ckpt-1")
  checkpoints.save_checkpoint(dict(tensors, **head), prefix)
  model = BertSquadV2(config, START_N_TOP, END_N_TOP, dropout_prob=0.0)
  report = checkpoints.load_checkpoint(model, prefix, allow_missing=False)
  # ALBERT's p_mask: [CLS] and the second segment's real tokens but its
  # last can hold an answer.
  mask, segments = io["input_mask"], io["segment_ids"]
  last = mask.sum(-1) - 1
  open_ = (segments == 1) & (mask == 1)
  open_[np.arange(len(mask)), last] = False
  open_[:, 0] = True
  features = {"input_ids": io["input_ids"], "input_mask": mask,
              "segment_ids": segments,
              "p_mask": (~open_).astype(np.int32)}
  weights = {k: v.astype(np.float64) for k, v in head.items()}
  return dict(config=config, model=model, report=report, features=features,
              sequence=io["sequence_output"].astype(np.float64),
              weights=weights)


def test_variables_are_albert_run_squad_v2_names(albert):
  model, config = albert["model"], albert["config"]
  head = {v.path: tuple(v.shape) for v in model.weights
          if not v.path.startswith("bert/")}
  assert head == _head_names(config.hidden_size)
  report = albert["report"]
  assert not report.missing
  assert set(_head_names(config.hidden_size)) <= set(report.loaded)
  # The original checkpoint's pretraining heads are the only unused names.
  assert report.unexpected and all(name.startswith("cls/")
                                   for name in report.unexpected)


def test_inference_outputs_are_albert_beam(albert):
  outputs = albert["model"](albert["features"], training=False)
  expected = _albert_v2_model(albert["sequence"],
                              albert["features"]["p_mask"].astype(np.float64),
                              albert["weights"])
  assert sorted(outputs) == sorted(expected)
  for key in ("start_top_index", "end_top_index"):
    np.testing.assert_array_equal(outputs[key].numpy(), expected[key],
                                  err_msg=key)
    assert outputs[key].dtype == tf.int32
  for key in ("start_top_log_probs", "end_top_log_probs", "cls_logits"):
    np.testing.assert_allclose(outputs[key].numpy(), expected[key],
                               rtol=1e-5, atol=1e-5, err_msg=key)
  # A few numbers, so that the comparison is not vacuous: the beams hold
  # document positions only, and not all logits are alike.
  p_mask = albert["features"]["p_mask"]
  for b in range(len(p_mask)):
    assert not p_mask[b, expected["start_top_index"][b]].any()
    assert not p_mask[b, expected["end_top_index"][b]].any()
  assert np.ptp(expected["cls_logits"]) > 0.1
  assert np.ptp(expected["start_top_log_probs"]) > 0.1


def test_training_outputs_and_loss_are_albert(albert):
  # Answers in the second segment of rows 0 and 2; row 1 impossible ([CLS]).
  p_mask = albert["features"]["p_mask"]
  open_rows = [np.flatnonzero(row == 0) for row in p_mask]
  start = np.array([open_rows[0][2], 0, open_rows[2][1]])
  end = np.array([open_rows[0][5], 0, open_rows[2][3]])
  impossible = np.array([0, 1, 0])
  assert (albert["features"]["segment_ids"][[0, 2], start[[0, 2]]] == 1).all()
  features = dict(albert["features"], start_positions=start,
                  end_positions=end, is_impossible=impossible)
  outputs = albert["model"](features, training=True)
  expected = _albert_v2_model(albert["sequence"],
                              features["p_mask"].astype(np.float64),
                              albert["weights"], start)
  assert sorted(outputs) == sorted(expected)
  for key, value in expected.items():
    np.testing.assert_allclose(outputs[key].numpy(), value, rtol=1e-5,
                               atol=1e-5, err_msg=key)
  total, span, answer_class = squad_albert_v2.compute_losses(
      outputs, {k: tf.constant(v) for k, v in features.items()})
  np.testing.assert_allclose(
      float(total), _albert_v2_loss(expected, start, end, impossible),
      rtol=1e-5)
  np.testing.assert_allclose(float(total),
                             float(span) + 0.5 * float(answer_class),
                             rtol=1e-6)
  loss, logs = squad_albert_v2.loss_fn(albert["model"], features, False)
  np.testing.assert_allclose(float(loss), float(total), rtol=1e-6)
  assert sorted(logs) == ["answer_class_loss", "span_loss"]


def test_any_sequence_length(albert):
  """Dynamic shapes: padding a batch further changes no output."""
  features = albert["features"]
  padded = {k: np.pad(v, [(0, 0), (0, 9)], constant_values=(
      1 if k == "p_mask" else 0)) for k, v in features.items()}
  step = tf.function(lambda f: albert["model"](f, training=False))
  short = step({k: tf.constant(v) for k, v in features.items()})
  long_ = step({k: tf.constant(v) for k, v in padded.items()})
  assert long_["end_top_log_probs"].shape == short["end_top_log_probs"].shape
  for key in short:
    np.testing.assert_allclose(long_[key].numpy(), short[key].numpy(),
                               rtol=1e-5, atol=1e-5, err_msg=key)


# ---------------------------------------------------------------------------
# accumulate_predictions_v2 / write_predictions_v2 / evaluate_v2, transcribed.


def _albert_accumulate(result_dict, cls_dict, examples, features, results,
                       max_answer_length):
  by_example = collections.defaultdict(list)
  for feature in features:
    by_example[feature.example_index].append(feature)
  by_id = {r.unique_id: r for r in results}
  for example_index, _ in enumerate(examples):
    result_dict.setdefault(example_index, {})
    score_null = 1000000
    for feature in by_example[example_index]:
      spans = result_dict[example_index].setdefault(feature.unique_id, {})
      result = by_id[feature.unique_id]
      score_null = min(score_null, result.cls_logits)
      doc_offset = feature.tokens.index("[SEP]") + 1
      for i in range(START_N_TOP):
        for j in range(END_N_TOP):
          start_log_prob = result.start_top_log_probs[i]
          start_index = result.start_top_index[i]
          end_log_prob = result.end_top_log_probs[i * END_N_TOP + j]
          end_index = result.end_top_index[i * END_N_TOP + j]
          if start_index - doc_offset >= len(feature.tok_start_to_orig_index):
            continue
          if start_index - doc_offset < 0:
            continue
          if end_index - doc_offset >= len(feature.tok_end_to_orig_index):
            continue
          if not feature.token_is_max_context.get(start_index, False):
            continue
          if end_index < start_index:
            continue
          if end_index - start_index + 1 > max_answer_length:
            continue
          key = (start_index - doc_offset, end_index - doc_offset)
          spans.setdefault(key, []).append((start_log_prob, end_log_prob))
    cls_dict.setdefault(example_index, []).append(score_null)


def _albert_write(result_dict, cls_dict, examples, features, n_best_size,
                  threshold):
  by_example = collections.defaultdict(list)
  for feature in features:
    by_example[feature.example_index].append(feature)
  predictions, nbest_json, odds = {}, {}, {}
  for example_index, example in enumerate(examples):
    feats = by_example[example_index]
    prelim = []
    for feature_index, feature in enumerate(feats):
      for (s, e), logprobs in result_dict[example_index][
          feature.unique_id].items():
        prelim.append((feature_index, s, e,
                       sum(p[0] for p in logprobs) / len(logprobs),
                       sum(p[1] for p in logprobs) / len(logprobs)))
    prelim = sorted(prelim, key=lambda x: x[3] + x[4], reverse=True)
    seen, nbest = {}, []
    for feature_index, s, e, slp, elp in prelim:
      if len(nbest) >= n_best_size:
        break
      feature = feats[feature_index]
      text = example.paragraph_text[feature.tok_start_to_orig_index[s]:
                                    feature.tok_end_to_orig_index[e] +
                                    1].strip()
      if text in seen:
        continue
      seen[text] = True
      nbest.append((text, slp, elp))
    if not nbest:
      nbest.append(("", -1e6, -1e6))
    scores = [x[1] + x[2] for x in nbest]
    exp = [math.exp(x - max(scores)) for x in scores]
    nbest_json[example.qas_id] = [
        {"text": t, "probability": p / sum(exp), "start_log_prob": slp,
         "end_log_prob": elp} for (t, slp, elp), p in zip(nbest, exp)]
    diff = sum(cls_dict[example_index]) / len(cls_dict[example_index])
    odds[example.qas_id] = diff
    if threshold is None or diff < threshold:
      predictions[example.qas_id] = nbest[0][0]
    else:
      predictions[example.qas_id] = ""
  return predictions, nbest_json, odds


def _official(dataset, predictions, odds, na_prob_thresh=1.0):
  qid_to_has_ans = squad_metrics.make_qid_to_has_ans(dataset)
  exact_raw, f1_raw = squad_metrics.get_raw_scores(dataset, predictions)
  exact = squad_metrics.apply_no_ans_threshold(exact_raw, odds,
                                               qid_to_has_ans, na_prob_thresh)
  f1 = squad_metrics.apply_no_ans_threshold(f1_raw, odds, qid_to_has_ans,
                                            na_prob_thresh)
  return squad_metrics.make_eval_dict(exact, f1), exact_raw, f1_raw


def _albert_evaluate(dataset, examples, features, results, n_best_size,
                     max_answer_length):
  """evaluate_v2: predict without threshold, search, predict and score again."""
  result_dict, cls_dict = {}, {}
  _albert_accumulate(result_dict, cls_dict, examples, features, results,
                     max_answer_length)
  predictions, _, odds = _albert_write(result_dict, cls_dict, examples,
                                       features, n_best_size, None)
  _, _, f1_raw = _official(dataset, predictions, odds)
  _, threshold = squad_metrics.find_best_thresh(
      predictions, f1_raw, odds, squad_metrics.make_qid_to_has_ans(dataset))
  predictions, nbest, odds = _albert_write(result_dict, cls_dict, examples,
                                           features, n_best_size, threshold)
  out_eval = _official(dataset, predictions, odds)[0]
  out_eval["null_score_diff_threshold"] = threshold
  return out_eval, predictions, nbest, odds


@pytest.fixture(scope="module")
def v2_features(fixtures_dir, tmp_path_factory):
  """ALBERT's features of dev-v2.0-sample.json, small overlapping windows."""
  root = tmp_path_factory.mktemp("albert_v2_features")
  spm_model = train_albert_spm(
      write_squad_texts(fixtures_dir, root / "texts.txt"), root / "spm",
      vocab_size=500)
  tokenizer = tokenization.FullTokenizer(None, True, spm_model_file=spm_model)
  path = fixtures_dir / "squad" / "dev-v2.0-sample.json"
  examples = squad_sentencepiece.read_squad_examples(str(path), False)
  features = []
  squad_sentencepiece.convert_examples_to_features(
      examples, tokenizer, 64, 24, 16, False, features.append, True)
  return dict(examples=examples, features=features,
              dataset=squad_data.read_squad_data(str(path)),
              spm_model=spm_model, root=root)


def _gold_spans(examples, features, dataset):
  """unique_id -> (start, end) of a window span whose text is the gold answer."""
  gold = {qa["id"]: qa["answers"][0]["text"] for article in dataset
          for p in article["paragraphs"] for qa in p["qas"] if qa["answers"]}
  spans = {}
  for feature in features:
    example = examples[feature.example_index]
    if example.qas_id not in gold:
      continue
    doc = sorted(feature.token_to_orig_map)
    for s in doc:
      for e in doc[doc.index(s):]:
        if (feature.token_is_max_context[s] and squad_sentencepiece.answer_text(
            example, feature, s, e) == gold[example.qas_id]):
          spans.setdefault(feature.unique_id, (s, e))
  return spans


def _crafted_results(features, seed, no_span_example=None, gold_spans=None,
                     impossible=()):
  """Beams of every kind: in the document, in the question, past the end,
  ends before starts, long spans, log-probabilities with ties; with
  `gold_spans` the gold span leads some beams, and the answer class leans
  towards the questions in `impossible`."""
  rng = np.random.RandomState(seed)
  results = []
  for feature in features:
    doc = sorted(feature.token_to_orig_map)
    seq = len(feature.input_ids)
    if feature.example_index == no_span_example:
      starts = [1, 2, 3]  # question pieces only
    else:
      pool = doc + list(rng.choice(seq, 4, replace=False))
      starts = list(rng.choice(sorted(set(pool)), START_N_TOP, replace=False))
    ends = []
    for s in starts:
      choices = [s + int(d) for d in rng.randint(-2, 9, size=6)] + [
          int(rng.randint(seq))]
      choices = [c for c in dict.fromkeys(choices + [0, seq - 1])
                 if 0 <= c < seq]
      ends.extend(choices[:END_N_TOP])
    # Log-probabilities on a coarse grid: ties between candidates.
    start_lp = sorted((np.round(rng.uniform(-4, 0, START_N_TOP) * 2) / 2),
                      reverse=True)
    end_lp = np.round(rng.uniform(-4, 0, START_N_TOP * END_N_TOP) * 2) / 2
    cls = rng.normal(0, 2)
    if gold_spans is not None:
      gold_start, gold_end = gold_spans.get(feature.unique_id, (None, None))
      # (top_k's indexes are distinct)
      if (gold_start is not None and rng.uniform() < 0.7 and
          gold_start not in starts[1:] and gold_end not in ends[1:END_N_TOP]):
        starts[0], ends[0] = gold_start, gold_end
        start_lp[0], end_lp[0] = 0.0, 0.0
      cls += 1.5 if feature.example_index in impossible else -1.5
    results.append(squad_albert_v2.RawResultV2(
        unique_id=feature.unique_id,
        start_top_log_probs=[float(x) for x in start_lp],
        start_top_index=[int(x) for x in starts],
        end_top_log_probs=[float(x) for x in end_lp],
        end_top_index=[int(x) for x in ends],
        cls_logits=float(cls)))
  return results


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [None, -1.0, 0.0, 1.5])
def test_predictions_are_albert_write_predictions_v2(v2_features, seed,
                                                     threshold):
  examples, features = v2_features["examples"], v2_features["features"]
  assert len(features) > 2 * len(examples)  # windows overlap
  results = _crafted_results(features, seed, no_span_example=seed)
  n_best_size, max_answer_length = 4, 5
  result_dict, cls_dict = {}, {}
  _albert_accumulate(result_dict, cls_dict, examples, features, results,
                     max_answer_length)
  expected = _albert_write(result_dict, cls_dict, examples, features,
                           n_best_size, threshold)
  actual = squad_albert_v2.compute_predictions(
      examples, features, results, n_best_size, max_answer_length,
      START_N_TOP, END_N_TOP, threshold)
  assert actual[0] == expected[0]
  assert actual[1] == expected[1]
  assert [list(e) for e in actual[1][examples[0].qas_id]][0] == [
      "text", "probability", "start_log_prob", "end_log_prob"]
  assert actual[2] == expected[2]
  assert sum(len(v) > 1 for v in actual[1].values()) > len(examples) // 2
  # The question without a valid span gets ALBERT's placeholder.
  qid = examples[seed].qas_id
  assert actual[1][qid] == [{"text": "", "probability": 1.0,
                             "start_log_prob": -1e6, "end_log_prob": -1e6}]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_threshold_search_and_results_are_albert_evaluate_v2(v2_features,
                                                             seed):
  examples, features = v2_features["examples"], v2_features["features"]
  dataset = v2_features["dataset"]
  has_answer = squad_metrics.make_qid_to_has_ans(dataset)
  gold_spans = _gold_spans(examples, features, dataset)
  assert len({f.example_index for f in features
              if f.unique_id in gold_spans}) == sum(has_answer.values())
  results = _crafted_results(
      features, seed, gold_spans=gold_spans,
      impossible={i for i, e in enumerate(examples)
                  if not has_answer[e.qas_id]})
  expected, predictions, _, odds = _albert_evaluate(
      dataset, examples, features, results, 20, 30)
  _, nbest, null_odds = squad_albert_v2.compute_predictions(
      examples, features, results, 20, 30, START_N_TOP, END_N_TOP)
  threshold = squad_albert_v2.best_f1_threshold(dataset, nbest, null_odds)
  assert threshold == expected["null_score_diff_threshold"]
  actual, _, actual_odds = squad_albert_v2.compute_predictions(
      examples, features, results, 20, 30, START_N_TOP, END_N_TOP, threshold)
  assert actual == predictions and actual_odds == odds
  official = squad_metrics.evaluate_v2(dataset, actual, actual_odds)
  for key in ("exact", "f1", "total"):
    assert official[key] == expected[key]
  # A threshold inside the null odds: some questions answered, some not.
  assert min(odds.values()) < threshold < max(odds.values())
  assert 0 < sum(p == "" for p in actual.values()) < len(actual)


# ---------------------------------------------------------------------------
# run_squad.py --squad_head=albert_v2.


def test_albert_v2_flags_are_checked(fixtures_dir, tmp_path):
  config = fixtures_dir / "original_albert_small" / "albert_config.json"
  common = ["--albert_config_file=%s" % config, "--output_dir=%s" % tmp_path,
            "--do_predict", "--predict_file=x", "--squad_head=albert_v2"]
  common += ["--max_seq_length=64", "--max_query_length=16"]
  code, log = run_squad(*common, "--vocab_file=%s" % (
      fixtures_dir / "original_albert_small" / "vocab.txt"),
                        "--version_2_with_negative")
  assert code != 0
  assert "--squad_head=albert_v2 needs --spm_model_file" in log
  code, log = run_squad(*common, "--spm_model_file=x.model")
  assert code != 0
  assert "and --version_2_with_negative" in log


NUM_STEPS = 700  # int(14 / 4 * 200)


@pytest.fixture(scope="module")
def trained(fixtures_dir, tmp_path_factory):
  """A tiny ALBERT fine-tuned with the v2 head on dev-v2.0-sample.json."""
  root = tmp_path_factory.mktemp("albert_v2_run")
  v2_file = fixtures_dir / "squad" / "dev-v2.0-sample.json"
  common = tiny_albert_flags(fixtures_dir, root) + [
      "--squad_head=albert_v2", "--version_2_with_negative",
      "--start_n_top=4", "--end_n_top=3"]
  output_dir = root / "v2"
  code, log = run_squad(
      *common, "--output_dir=%s" % output_dir, "--train_file=%s" % v2_file,
      "--predict_file=%s" % v2_file, "--do_train", "--do_predict",
      "--train_batch_size=4", "--num_train_epochs=200",
      "--learning_rate=2e-3", "--log_steps=1")
  assert code == 0, log[-3000:]
  return dict(root=root, common=common, output_dir=output_dir, log=log,
              v2_file=v2_file)


def _qids(path):
  return [qa["id"] for article in squad_data.read_squad_data(str(path))
          for p in article["paragraphs"] for qa in p["qas"]]


@pytest.mark.slow
def test_fine_tuning_learns_and_writes_albert_names(trained):
  losses = [float(x) for x in re.findall(
      r"step \d+/%d  loss = ([0-9.]+)" % NUM_STEPS, trained["log"])]
  assert len(losses) == NUM_STEPS
  assert sum(losses[-20:]) < 0.2 * sum(losses[:20])
  assert "answer_class_loss = " in trained["log"]
  names = dict(tf.train.list_variables(str(
      trained["output_dir"] / ("model.ckpt-%d" % NUM_STEPS))))
  for name, shape in _head_names(32).items():
    assert names[name] == list(shape), name
  assert not any(name.startswith("cls/squad") for name in names)


@pytest.mark.slow
def test_predictions_null_odds_and_searched_threshold(trained):
  out = trained["output_dir"]
  qids = _qids(trained["v2_file"])
  predictions = _load(out / "predictions.json")
  nbest = _load(out / "nbest_predictions.json")
  null_odds = _load(out / "null_odds.json")
  assert list(predictions) == qids and list(nbest) == qids
  assert list(null_odds) == qids
  results = _load(out / "squad_eval_results.json")
  threshold = results["null_score_diff_threshold"]
  for qid in qids:
    entries = nbest[qid]
    assert 1 <= len(entries) <= 20
    assert list(entries[0]) == ["text", "probability", "start_log_prob",
                                "end_log_prob"]
    assert abs(sum(e["probability"] for e in entries) - 1.0) < 1e-6
    assert predictions[qid] == ("" if null_odds[qid] >= threshold
                                else entries[0]["text"])
  dataset = squad_data.read_squad_data(str(trained["v2_file"]))
  expected = squad_metrics.evaluate_v2(dataset, predictions, null_odds)
  expected["null_score_diff_threshold"] = threshold
  assert results == pytest.approx(expected)
  print("ALBERT v2 head, SQuAD v2.0 sample (trained on it):", results)
  # The tiny model fits the answers and the unanswerable questions it was
  # trained on (92.9 exact when written).
  assert results["exact"] > 70.0
  assert results["NoAns_exact"] > 80.0


def _predict_again(trained, name, *flags):
  """Predicts the v2.0 sample from the trained checkpoint into root/name."""
  out = trained["root"] / name
  code, log = run_squad(
      *trained["common"], "--output_dir=%s" % out,
      "--init_checkpoint=%s" % (trained["output_dir"] /
                                ("model.ckpt-%d" % NUM_STEPS)),
      "--predict_file=%s" % trained["v2_file"], "--do_predict", *flags)
  assert code == 0, log[-3000:]
  return out


@pytest.mark.slow
def test_given_threshold_is_used_as_is(trained):
  out = _predict_again(trained, "fixed", "--null_score_diff_threshold=0.0")
  predictions = _load(out / "predictions.json")
  null_odds = _load(out / "null_odds.json")
  for qid in predictions:
    assert (predictions[qid] == "") == (null_odds[qid] >= 0.0)
  assert _load(out / "squad_eval_results.json")[
      "null_score_diff_threshold"] == 0.0


@pytest.mark.slow
def test_fixed_shapes_give_the_dynamic_padding_predictions(trained):
  """The default cuts batches to their longest window (p_mask with them)."""
  out = _predict_again(trained, "fixed_shapes", "--nodynamic_padding")
  dynamic = trained["output_dir"]
  assert _load(out / "predictions.json") == _load(dynamic /
                                                  "predictions.json")
  null_odds = _load(out / "null_odds.json")
  assert null_odds == pytest.approx(_load(dynamic / "null_odds.json"),
                                    abs=1e-5)
