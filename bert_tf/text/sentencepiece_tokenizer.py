"""`FastSentencePieceTokenizer`: ALBERT's SentencePiece tokenization in-graph.

`FastSentencePieceTokenizer(spm_model_file, do_lower_case).tokenize(texts)`
returns, for every string, the ids of
`bert_tf.tokenization.FullTokenizer(None, do_lower_case, spm_model_file)`:
`convert_tokens_to_ids(tokenize(text))`, as TensorFlow ops. With
`preprocess_text=False` (step 1 skipped) they are the ids of Model Garden's
`tokenization.FullSentencePieceTokenizer(spm_model_file)`, which tokenizes the
text as given.

How:
  1. `preprocess_text` on code points, with tables built from Python's
     `unicodedata` and `str.lower()` (`unicode_tables.PreprocessTables`):
     whitespace runs become one space and the ends are stripped (as
     `" ".join(text.split())`), every code point becomes its NFKD without
     combining characters, then (lower casing) `str.lower()`, with Python's
     Final_Sigma rule for the capital sigma.
  2. `tensorflow_text.SentencepieceTokenizer` with the same model gives the
     pieces.
  3. ALBERT's digit-comma fix: a piece of two or more characters that ends
     in a comma after a digit (`str.isdigit`) is replaced by the pieces of
     itself without the comma and without "\u2581", then ",".
  4. The model maps pieces to ids (an unknown piece to `<unk>`'s id).
"""

import tensorflow as tf
import tensorflow_text as tf_text

from bert_tf import tokenization
from bert_tf.text import unicode_tables
from bert_tf.text import wordpiece

# Internal helpers of the WordPiece tokenizer, shared on purpose.
# pylint: disable=protected-access


def _char_class(code_points):
  """An RE2 character class of `code_points` (a sorted list of ints)."""
  ranges = []
  for code_point in code_points:
    if ranges and ranges[-1][1] == code_point - 1:
      ranges[-1][1] = code_point
    else:
      ranges.append([code_point, code_point])
  return "[%s]" % "".join(
      "\\x{%x}" % a if a == b else "\\x{%x}-\\x{%x}" % (a, b)
      for a, b in ranges)


def _keep(values, keep, row_splits):
  """Keeps `values[keep]` and recomputes the row splits."""
  kept_before = tf.concat([[0], tf.cumsum(tf.cast(keep, tf.int64))], 0)
  return tf.boolean_mask(values, keep), tf.gather(kept_before, row_splits)


def _row_starts_and_ends(values, row_splits):
  """bool [num_chars] x 2: whether a value is the first / last of its text."""
  num_chars = tf.size(values, out_type=tf.int64)
  start, end = wordpiece._row_bounds(row_splits)
  positions = tf.range(num_chars)
  return positions == start, positions == end - 1


class FastSentencePieceTokenizer(tf.Module):
  """In-graph ALBERT SentencePiece tokenizer giving `FullTokenizer`'s ids.

  Ids are int64 (`tokenize` returns an int64 RaggedTensor).

  Attributes:
    spm_model_file: `tf.saved_model.Asset` of the model file.
    do_lower_case: whether text is lower cased.
    preprocess_text: whether texts go through `preprocess` first.
    vocab_size: the number of pieces of the model.
    cls_id, sep_id, mask_id: Python ints, ids of "[CLS]", "[SEP]", "[MASK]"
      (None for a piece the model lacks).
    unk_id, pad_id: Python ints, the model's unknown id and the id of
      "<pad>" (0 when the model has none).
  """

  def __init__(self, spm_model_file, do_lower_case=True, preprocess_text=True,
               name=None):
    """Loads the model and builds the tables.

    Args:
      spm_model_file: path of a SentencePiece model.
      do_lower_case: as `FullTokenizer`'s (with `preprocess_text` only).
      preprocess_text: True for `FullTokenizer`'s ids (ALBERT), False for
        `FullSentencePieceTokenizer`'s (Model Garden: no preprocessing).
      name: optional `tf.Module` name.

    Raises:
      ValueError: if the file is missing or not a SentencePiece model.
    """
    super().__init__(name=name)
    sp_model = tokenization.load_sentencepiece_model(spm_model_file)
    vocab = tokenization.SentencePieceVocab(sp_model)
    self.spm_model_file = tf.saved_model.Asset(spm_model_file)
    self.do_lower_case = bool(do_lower_case)
    self.preprocess_text = bool(preprocess_text)
    self.vocab_size = len(vocab)
    self.unk_id = vocab.unk_id
    self.cls_id = vocab.get("[CLS]")
    self.sep_id = vocab.get("[SEP]")
    self.mask_id = vocab.get("[MASK]")
    self.pad_id = vocab.get("<pad>", 0)
    self._sentencepiece = tf_text.SentencepieceTokenizer(
        model=sp_model.serialized_model_proto(), out_type=tf.string)
    tables = unicode_tables.get_preprocess_tables()
    self._is_space = tf.Variable(tables.is_space, trainable=False,
                                 name="is_space")
    self._nfkd = wordpiece.FastBertTokenizer._mapping_variables(
        tables.nfkd, "nfkd")
    if self.do_lower_case:
      self._lower = wordpiece.FastBertTokenizer._mapping_variables(
          tables.lower, "lower")
      self._sigma_class = tf.Variable(tables.sigma_class, trainable=False,
                                      name="sigma_class")
    # A piece ending in a digit and a comma (so of 2+ characters).
    self._digit_comma = "(?s).*%s," % _char_class(tables.digits)

  def preprocess(self, texts):
    """`tokenization.preprocess_text(text, lower=do_lower_case)` in-graph.

    ASCII texts, which NFKD leaves alone, take byte-level string ops; the
    others the per-code-point tables.

    Args:
      texts: string Tensor [batch] (UTF-8; invalid bytes are dropped).

    Returns:
      string Tensor [batch].
    """
    is_ascii = tf.strings.regex_full_match(texts, "[\\x00-\\x7f]*")
    ascii_rows = tf.where(is_ascii)[:, 0]
    other_rows = tf.where(~is_ascii)[:, 0]
    # ASCII whitespace to `str.split()`: \t \n \v \f \r, \x1c-\x1f, space.
    ascii_texts = tf.strings.regex_replace(
        tf.strings.regex_replace(tf.gather(texts, ascii_rows),
                                 "[\\t-\\r\\x1c- ]+", " "), "^ | $", "")
    if self.do_lower_case:
      ascii_texts = tf.strings.lower(ascii_texts)  # ASCII only, as str.lower.
    other_texts = self._preprocess_code_points(tf.gather(texts, other_rows))
    preprocessed = tf.concat([ascii_texts, other_texts], axis=0)
    return tf.gather(preprocessed,
                     tf.argsort(tf.concat([ascii_rows, other_rows], 0)))

  def _preprocess_code_points(self, texts):
    """`preprocess` on code points, with the tables (any text)."""
    chars = tf.strings.unicode_decode(texts, "UTF-8", errors="ignore")
    values, row_splits = chars.flat_values, chars.row_splits
    # " ".join(text.split()): one space for a run, none at the ends.
    is_space = tf.gather(self._is_space, wordpiece._domain_index(values))
    starts, _ = _row_starts_and_ends(values, row_splits)
    after_space = tf.concat([[False], is_space[:-1]], 0) & ~starts
    values = tf.where(is_space, unicode_tables.SPACE, values)
    values, row_splits = _keep(values, ~(is_space & after_space), row_splits)
    starts, ends = _row_starts_and_ends(values, row_splits)
    values, row_splits = _keep(
        values, ~((values == unicode_tables.SPACE) & (starts | ends)),
        row_splits)
    values, row_splits = wordpiece._map_code_points(values, row_splits,
                                                    *self._nfkd)
    if self.do_lower_case:
      values = wordpiece._apply_final_sigma(values, row_splits,
                                            self._sigma_class)
      values, row_splits = wordpiece._map_code_points(values, row_splits,
                                                      *self._lower)
    return tf.strings.unicode_encode(
        tf.RaggedTensor.from_row_splits(values, row_splits, validate=False),
        "UTF-8")

  def tokenize_pieces(self, texts):
    """Tokenizes texts into ALBERT's pieces.

    Args:
      texts: string Tensor [batch].

    Returns:
      string RaggedTensor [batch, (num_pieces)]: `FullTokenizer.tokenize`
      (`FullSentencePieceTokenizer.tokenize` without `preprocess_text`).
    """
    if self.preprocess_text:
      texts = self.preprocess(texts)
    else:  # Invalid bytes dropped, as `convert_to_unicode`.
      texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8",
                                           errors="ignore")
    pieces = self._sentencepiece.tokenize(texts)
    flat = pieces.flat_values  # [num_pieces]
    fix = tf.strings.regex_full_match(flat, self._digit_comma)  # [num_pieces]
    fixed_rows = tf.where(fix)  # [num_fixed, 1]
    to_fix = tf.gather_nd(flat, fixed_rows)  # [num_fixed]
    lengths = tf.strings.length(to_fix)  # [num_fixed], in bytes
    cores = tf.strings.regex_replace(
        tf.strings.substr(to_fix, tf.zeros_like(lengths), lengths - 1),
        tokenization.SPIECE_UNDERLINE, "")
    fixed = self._sentencepiece.tokenize(cores)  # [num_fixed, (pieces)]
    commas = tf.fill(tf.shape(cores), ",")[:, tf.newaxis]
    fixed = tf.concat([fixed, commas], axis=1)
    num_pieces = tf.shape(flat, out_type=tf.int64)
    kept = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(flat, ~fix), tf.cast(~fix, tf.int64), validate=False)
    replaced = tf.RaggedTensor.from_row_lengths(
        fixed.flat_values,
        tf.scatter_nd(fixed_rows, fixed.row_lengths(), num_pieces),
        validate=False)
    per_piece = tf.concat([kept, replaced], axis=1)  # [num_pieces, (pieces)]
    return tf.RaggedTensor.from_row_splits(
        per_piece, pieces.row_splits, validate=False).merge_dims(1, 2)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def tokenize(self, texts):
    """Tokenizes texts into ids.

    Args:
      texts: string Tensor [batch].

    Returns:
      int64 RaggedTensor [batch, (num_tokens)]:
      `FullTokenizer.convert_tokens_to_ids(FullTokenizer.tokenize(text))`
      (of `FullSentencePieceTokenizer` without `preprocess_text`).
    """
    pieces = self.tokenize_pieces(texts)
    return pieces.with_flat_values(tf.cast(
        self._sentencepiece.string_to_id(pieces.flat_values), tf.int64))
