"""Eval metrics as TensorBoard scalars, where the original's Estimator wrote them.

The original scripts evaluated through `TPUEstimator.evaluate`, which wrote
each metric as a scalar summary under `<output_dir>/eval` at the evaluated
global step (tags `masked_lm_accuracy`, `eval_accuracy`, `eval_loss`, ...).
The training loop's own scalars go to `<output_dir>` itself (`Trainer`).
"""

import os

import tensorflow as tf

EVAL_SUBDIR = "eval"


def write_eval_scalars(output_dir, results, step=None):
  """Writes a dict of eval metrics as scalars under `output_dir/eval`.

  Args:
    output_dir: the run's output directory.
    results: dict of metric name -> number (an entry `global_step` is the
      step, not a scalar).
    step: the global step; default `results["global_step"]`.

  Returns:
    The directory written (`output_dir/eval`).
  """
  if step is None:
    step = results["global_step"]
  directory = os.path.join(output_dir, EVAL_SUBDIR)
  writer = tf.summary.create_file_writer(directory)
  with writer.as_default():
    for name in sorted(results):
      if name != "global_step":
        tf.summary.scalar(name, float(results[name]), step=int(step))
  writer.close()
  return directory
