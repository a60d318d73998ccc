"""Learning a WordPiece vocabulary from raw text (for new corpora and the demo).

A thin layer over tensorflow-text's BERT vocabulary learner: the text is split
into words by its BERT pre-tokenizer (lower-casing on request), then the
WordPiece learner picks the pieces. The vocabulary starts with BERT's special
tokens, so that `FullTokenizer` and the pretraining tools can use it as is.
"""

import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset

from bert_tf import file_io

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def read_lines(input_files):
  """Returns the non-empty stripped lines of every file, in order.

  Args:
    input_files: list of paths.

  Returns:
    list of str.

  Raises:
    ValueError: if a file is missing or no file has any text.
  """
  lines = []
  for path in input_files:
    if not tf.io.gfile.exists(path):
      raise ValueError("Input file not found: %s" % path)
    with tf.io.gfile.GFile(path, "r") as reader:
      lines.extend(line.strip() for line in reader if line.strip())
  if not lines:
    raise ValueError("No text in the input files: %s" % ", ".join(input_files))
  return lines


def learn_vocab(lines, vocab_size, do_lower_case=True, min_count=2):
  """Learns a WordPiece vocabulary.

  Args:
    lines: list of str, the training text.
    vocab_size: the target size (the learner may return fewer tokens on
      small corpora).
    do_lower_case: lower-case and strip accents before learning, as for an
      uncased model.
    min_count: the least count of a word for the learner to consider it.

  Returns:
    list of tokens: the reserved tokens, then single characters and pieces
    ("##" marks a continuation).
  """
  dataset = tf.data.Dataset.from_tensor_slices(lines).batch(1024)
  return bert_vocab_from_dataset.bert_vocab_from_dataset(
      dataset, vocab_size=vocab_size, reserved_tokens=list(RESERVED_TOKENS),
      bert_tokenizer_params={"lower_case": do_lower_case},
      learn_params={"lower_thresh": min_count})


def write_vocab(vocab, vocab_file):
  """Writes one token a line, under a temporary name renamed when complete."""
  with file_io.atomic_file(vocab_file) as writer:
    writer.write("".join(token + "\n" for token in vocab))
