"""Classification and regression metrics of GLUE, in numpy.

Each takes per-example arrays and optional weights (`is_real_example`: 0 for
padding examples, which are left out), and returns a Python float.
"""

import numpy as np


def _select(weights, *arrays):
  """The arrays' entries whose weight is non-zero (all without weights)."""
  if weights is None:
    return [np.asarray(a) for a in arrays]
  keep = np.asarray(weights) != 0
  return [np.asarray(a)[keep] for a in arrays]


def accuracy(predictions, labels, weights=None):
  """Weighted fraction of predictions equal to the labels (0 if no weight)."""
  correct = (np.asarray(predictions) == np.asarray(labels)).astype(np.float64)
  weights = (np.ones_like(correct) if weights is None else
             np.asarray(weights, np.float64))
  total = weights.sum()
  return float((weights * correct).sum() / total) if total else 0.0


def weighted_mean(values, weights=None):
  """Weighted mean of `values` (0 if no weight)."""
  values = np.asarray(values, np.float64)
  weights = (np.ones_like(values) if weights is None else
             np.asarray(weights, np.float64))
  total = weights.sum()
  return float((weights * values).sum() / total) if total else 0.0


def matthews_corrcoef(predictions, labels, weights=None):
  """Matthews correlation coefficient (multi-class form; 0 when undefined).

  MCC = (c * s - t . p) / sqrt((s^2 - p . p) (s^2 - t . t)) with c correct
  predictions, s examples, t and p the per-class counts of labels and
  predictions; for two classes (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)
  (tn+fn)).
  """
  predictions, labels = _select(weights, predictions, labels)
  classes = np.union1d(predictions, labels)
  t = np.array([(labels == c).sum() for c in classes], np.float64)
  p = np.array([(predictions == c).sum() for c in classes], np.float64)
  c = float((predictions == labels).sum())
  s = float(len(labels))
  denominator = np.sqrt((s * s - p.dot(p)) * (s * s - t.dot(t)))
  return float((c * s - t.dot(p)) / denominator) if denominator else 0.0


def f1_score(predictions, labels, weights=None, positive_label=1):
  """F1 of the positive class: 2 tp / (2 tp + fp + fn) (0 when undefined)."""
  predictions, labels = _select(weights, predictions, labels)
  tp = float(((predictions == positive_label) &
              (labels == positive_label)).sum())
  fp = float(((predictions == positive_label) &
              (labels != positive_label)).sum())
  fn = float(((predictions != positive_label) &
              (labels == positive_label)).sum())
  return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def pearson_corrcoef(x, y, weights=None):
  """Pearson correlation of two series (0 when one is constant)."""
  x, y = _select(weights, x, y)
  x = np.asarray(x, np.float64) - np.mean(x)
  y = np.asarray(y, np.float64) - np.mean(y)
  denominator = np.sqrt(x.dot(x) * y.dot(y))
  return float(x.dot(y) / denominator) if denominator else 0.0


def rank_average(values):
  """1-based ranks of `values`, ties sharing the average of their ranks."""
  values = np.asarray(values)
  order = np.argsort(values, kind="mergesort")
  sorted_values = values[order]
  # Start of each run of equal values in sorted order.
  starts = np.concatenate(
      [[True], sorted_values[1:] != sorted_values[:-1]]).nonzero()[0]
  ends = np.append(starts[1:], len(values))
  ranks = np.empty(len(values), np.float64)
  for start, end in zip(starts, ends):
    ranks[order[start:end]] = (start + 1 + end) / 2.0
  return ranks


def spearman_corrcoef(x, y, weights=None):
  """Spearman rank correlation: Pearson of the average ranks."""
  x, y = _select(weights, x, y)
  return pearson_corrcoef(rank_average(x), rank_average(y))
