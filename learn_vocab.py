"""Learns a WordPiece vocabulary (vocab.txt) from text files."""

from absl import flags
from absl import logging

from bert_tf import cli
from bert_tf.text import vocab_learner

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None,
                    "Comma-separated text files to learn from.")
flags.DEFINE_string("vocab_file", None, "Output vocabulary, one token a line.")
flags.DEFINE_integer("vocab_size", 8000, "Target vocabulary size.")
flags.DEFINE_bool("do_lower_case", True,
                  "Lower-case the text first (for an uncased model).")
flags.DEFINE_integer("min_count", 2,
                     "The least count of a word for the learner to use it.")


def main(_):
  logging.set_verbosity(logging.INFO)
  lines = vocab_learner.read_lines(FLAGS.input_file.split(","))
  vocab = vocab_learner.learn_vocab(lines, FLAGS.vocab_size,
                                    FLAGS.do_lower_case, FLAGS.min_count)
  vocab_learner.write_vocab(vocab, FLAGS.vocab_file)
  logging.info("Wrote %d tokens to %s", len(vocab), FLAGS.vocab_file)


def run_main():
  """Entry point of the `bert-learn-vocab` console script."""
  cli.run(main, __name__, required=["input_file", "vocab_file"])


if __name__ == "__main__":
  run_main()
