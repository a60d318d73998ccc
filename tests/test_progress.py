"""Progress lines of long evaluation and prediction loops."""

import logging as std_logging

from bert_tf.training import progress


def _messages(caplog):
  return [r.getMessage() for r in caplog.records]


def test_lines_count_batches_and_examples(caplog):
  with caplog.at_level(std_logging.INFO):
    log = progress.ProgressLog("Prediction", total_batches=3,
                               interval_secs=0.0)
    for size in (8, 8, 4):
      log.update(size)
    log.finish()
  lines = _messages(caplog)
  assert len(lines) == 4
  assert lines[0].startswith("Prediction: 1 of 3 batches, 8 examples (")
  assert lines[2].startswith("Prediction: 3 of 3 batches, 20 examples (")
  assert lines[3].startswith("Prediction done: 3 of 3 batches, 20 examples (")
  assert log.num_batches == 3 and log.num_examples == 20


def test_batches_only_and_the_interval(caplog):
  with caplog.at_level(std_logging.INFO):
    log = progress.ProgressLog("Evaluation", interval_secs=3600.0)
    for _ in range(5):
      log.update()
    log.finish()
  lines = _messages(caplog)
  # Nothing between the start and the end within the interval.
  assert len(lines) == 1
  assert lines[0].startswith("Evaluation done: 5 batches (")
