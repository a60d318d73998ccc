"""The `eval_results.txt` file of the original scripts: `key = value` lines.

The tasks compute the values (`bert_tf.tasks`); this module only writes and
reads the file, the same for every task.
"""

import tensorflow as tf


def write_eval_results(path, results):
  """Writes `eval_results.txt` as the original: `key = value`, sorted keys.

  Args:
    path: output file.
    results: dict of metric name -> number.
  """
  with tf.io.gfile.GFile(path, "w") as writer:
    for key in sorted(results):
      writer.write("%s = %s\n" % (key, str(results[key])))


def read_eval_results(path):
  """Reads an `eval_results.txt` back into a dict of name -> float."""
  results = {}
  with tf.io.gfile.GFile(path) as reader:
    for line in reader:
      if " = " in line:
        key, value = line.rstrip("\n").split(" = ", 1)
        results[key] = float(value)
  return results
