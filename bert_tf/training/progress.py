"""Progress lines for long evaluation and prediction loops.

The original's Estimator logged nothing between the start and the end of an
evaluation or a prediction over a large file; `ProgressLog` logs how far a
loop has got every few seconds, and a last line when it ends.
"""

import time

from absl import logging

# Seconds between the progress lines of a long loop.
DEFAULT_INTERVAL_SECS = 30.0


class ProgressLog(object):
  """Counts the batches and examples of a loop and logs them now and then."""

  def __init__(self, what, total_batches=None,
               interval_secs=DEFAULT_INTERVAL_SECS):
    """Starts the clock.

    Args:
      what: what the loop does, e.g. "Prediction" (starts each line).
      total_batches: the loop's number of batches, when known.
      interval_secs: seconds between progress lines.
    """
    self._what = what
    self._total = total_batches
    self._interval = interval_secs
    self._start = self._last_log = time.monotonic()
    self.num_batches = 0
    self.num_examples = 0

  def update(self, num_examples=None):
    """Counts one batch; logs if the interval has passed.

    Args:
      num_examples: the batch's examples, or None when the loop does not
        count them (the lines then give batches/s).
    """
    self.num_batches += 1
    if num_examples is not None:
      self.num_examples += int(num_examples)
    now = time.monotonic()
    if now - self._last_log >= self._interval:
      self._last_log = now
      logging.info("%s: %s", self._what, self._counts(now - self._start))

  def finish(self):
    """Logs the totals and the time taken."""
    elapsed = time.monotonic() - self._start
    logging.info("%s done: %s in %.1f s", self._what, self._counts(elapsed),
                 elapsed)

  def _counts(self, elapsed):
    """'N [of T] batches, M examples (R examples/s)' so far."""
    of_total = " of %d" % self._total if self._total else ""
    rate = max(elapsed, 1e-9)
    if self.num_examples:
      return "%d%s batches, %d examples (%.1f examples/s)" % (
          self.num_batches, of_total, self.num_examples,
          self.num_examples / rate)
    return "%d%s batches (%.2f batches/s)" % (
        self.num_batches, of_total, self.num_batches / rate)
