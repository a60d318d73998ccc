"""Tokens per second: Python `FullTokenizer` vs the in-graph tokenizer.

WordPiece (`FastBertTokenizer`) by default; with `--spm_model_file`, ALBERT's
SentencePiece tokenization (`FastSentencePieceTokenizer`).

Both tokenize every line of the corpus in the same process, alternately, for
`--repeats` rounds; the script prints the median time of each, tokens per
second and the ratio, after checking that both gave the same ids.

  PYTHONPATH=. python bench/tokenization_throughput.py --batch_size 4096 \\
      --corpus ../shared/fixtures/corpora/wikitext2_valid.tokens
"""

import os
import statistics
import time

from absl import app
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from bert_tf import tokenization  # pylint: disable=g-import-not-at-top
from bert_tf import text  # pylint: disable=g-import-not-at-top

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FIXTURES = os.path.join(os.path.dirname(_ROOT), "shared", "fixtures")

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "corpus", os.path.join(_FIXTURES, "corpora", "wikitext2_valid.tokens"),
    "Text file to tokenize, one text a line.")
flags.DEFINE_string(
    "vocab_file", os.path.join(_FIXTURES, "vocab", "uncased_vocab.txt"),
    "WordPiece vocabulary.")
flags.DEFINE_string("spm_model_file", None,
                    "A SentencePiece model: compare ALBERT's tokenization "
                    "instead of WordPiece.")
flags.DEFINE_bool("do_lower_case", True, "Lower case the input.")
flags.DEFINE_integer("batch_size", 4096, "Lines per call of the fast path.")
flags.DEFINE_integer("repeats", 5,
                     "Rounds of each tokenizer; medians are reported.")


def _python_ids(tokenizer, lines):
  """Returns the ids of every line with the Python tokenizer."""
  return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
          for line in lines]


def _fast_ids(tokenizer, batches):
  """Returns the ids of every batch with the fast path (RaggedTensors)."""
  return [tokenizer.tokenize(batch) for batch in batches]


def _timed(fn, *args):
  """Returns (seconds, result) of fn(*args)."""
  start = time.perf_counter()
  result = fn(*args)
  return time.perf_counter() - start, result


def main(argv):
  del argv
  with open(FLAGS.corpus, "rb") as f:
    lines = f.read().split(b"\n")
  if FLAGS.batch_size < 1:
    raise ValueError("--batch_size must be positive, got %d" % FLAGS.batch_size)
  batches = [tf.constant(lines[i:i + FLAGS.batch_size])
             for i in range(0, len(lines), FLAGS.batch_size)]
  if FLAGS.spm_model_file:
    python_tokenizer = tokenization.FullTokenizer(
        None, FLAGS.do_lower_case, spm_model_file=FLAGS.spm_model_file)
    fast_tokenizer = text.FastSentencePieceTokenizer(FLAGS.spm_model_file,
                                                     FLAGS.do_lower_case)
  else:
    python_tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file,
                                                  FLAGS.do_lower_case)
    fast_tokenizer = text.FastBertTokenizer(FLAGS.vocab_file,
                                            FLAGS.do_lower_case)

  # Warm-up (tracing) and the equality check.
  expected = _python_ids(python_tokenizer, lines)
  got = [ids for batch in _fast_ids(fast_tokenizer, batches)
         for ids in batch.to_list()]
  if got != expected:
    raise AssertionError("The fast path's ids differ from FullTokenizer's.")
  num_tokens = sum(len(ids) for ids in expected)

  python_times, fast_times = [], []
  for _ in range(FLAGS.repeats):
    python_times.append(_timed(_python_ids, python_tokenizer, lines)[0])
    fast_times.append(_timed(_fast_ids, fast_tokenizer, batches)[0])
  python_time = statistics.median(python_times)
  fast_time = statistics.median(fast_times)
  print("corpus: %s (%d lines, %d tokens), batch_size %d, %d repeats" %
        (FLAGS.corpus, len(lines), num_tokens, FLAGS.batch_size,
         FLAGS.repeats))
  print("python FullTokenizer: median %.3f s, %.0f tokens/s" %
        (python_time, num_tokens / python_time))
  print("fast (in-graph):      median %.3f s, %.0f tokens/s" %
        (fast_time, num_tokens / fast_time))
  print("ratio fast / python:  %.1fx" % (python_time / fast_time))


if __name__ == "__main__":
  app.run(main)
