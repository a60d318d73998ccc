"""`FastBertTokenizer`: in-graph BERT tokenization with the original's ids.

`FastBertTokenizer(vocab_file, do_lower_case, split_on_punc).tokenize(texts)`
returns, for every string, the ids that `bert_tf.tokenization.FullTokenizer`
(with the same options) gives: `convert_tokens_to_ids(tokenize(text))`. It
runs as TensorFlow ops, so it works in `tf.function`, `tf.data.Dataset.map` and
SavedModel signatures.

How. Printable ASCII texts (tabs and newlines allowed), on which byte-level
ops are exact, go straight to `tensorflow_text.FastWordpieceTokenizer` with its
own whitespace and punctuation splitting (after `tf.strings.lower` when lower
casing; without `split_on_punc`, split on whitespace only). All other texts
take the basic step on the code points of the whole batch at once, with
per-code-point tables built from Python's `unicodedata` and `str.lower()`
(`unicode_tables`), not with RE2 / ICU classes, whose Unicode versions and
case rules differ from Python's:
  1. UTF-8 decoding drops invalid bytes (as `bytes.decode("utf-8", "ignore")`).
  2. One table lookup per code point does the whole basic step: NUL, U+FFFD,
     Cc and Cf (but \\t \\n \\r) dropped, whitespace to " ", CJK ideographs
     and (`split_on_punc`) punctuation made words of their own, and (lower
     casing) `str.lower()`, NFD, Mn dropped.
  3. Lower casing only, and only for a batch that holds a capital sigma or a
     character whose NFD can be reordered visibly: the same steps one by one,
     with Python's Final_Sigma rule between cleaning and lower casing and the
     canonical reordering of NFD after it.
  4. The code points are grouped into words; words longer than 200 characters
     become "[UNK]"; `FastWordpieceTokenizer` does the greedy longest-match-
     first WordPiece step and, as the original, maps a word with any unmatched
     part to one "[UNK]". Without `split_on_punc` a word can start with "#",
     and the original then looks "##" tokens up whole at its start, where
     `FastWordpieceTokenizer` sees the suffix indicator: such a word gets
     U+FFFD in front, and the WordPiece model U+FFFD + each token starting
     with "#", whose ids map back to that token's.

The WordPiece models are compiled from `load_vocab`'s dictionary, so ids follow
its rules (stripped lines, the last line of a duplicate wins); tokens that the
original can never look up are left out of them. The vocabulary file itself is
tracked as a SavedModel asset (`vocab_file`).
"""

import tensorflow as tf
import tensorflow_text as tf_text

from bert_tf import tokenization
from bert_tf.text import unicode_tables

# The original keeps its character classes private; they are the reference.
# pylint: disable=protected-access

# The original WordpieceTokenizer's max_input_chars_per_word.
MAX_INPUT_CHARS_PER_WORD = 200
UNK_TOKEN = "[UNK]"
_SUFFIX_INDICATOR = "##"
# A character no word holds: cleaning removes it, and it is not ASCII.
_NOT_IN_WORDS = "\ufffd"


def _is_lookup_key(token, split_on_punc, whole=False):
  """Whether the original WordPiece step can ever look `token` up.

  Words are non-empty and hold no whitespace and no U+FFFD; with
  `split_on_punc` a punctuation character is a word of its own. A token is
  the start of a word or "##" followed by the rest of a word.

  Args:
    token: a vocabulary token.
    split_on_punc: the tokenizer's option.
    whole: ask only whether `token` as it is can start a word (for a token
      starting with "##", which a word can start with without
      `split_on_punc`).

  Returns:
    bool.
  """
  tail = token[len(_SUFFIX_INDICATOR):] if (
      token.startswith(_SUFFIX_INDICATOR) and not whole) else None
  word = token if tail is None else tail
  if word.isascii() and word.isalnum():
    return True  # The common case, decided without a loop over characters.
  if not word or _NOT_IN_WORDS in word or any(c.isspace() for c in word):
    return False
  if split_on_punc and any(tokenization._is_punctuation(c) for c in word):
    return tail is None and len(word) == 1
  return True


def _wordpiece_vocabulary(vocab, split_on_punc):
  """Returns the tokens for `FastWordpieceTokenizer` and the id of each.

  Ids that no lookup key owns (lines overridden by a later duplicate, empty
  lines, tokens with whitespace or, with `split_on_punc`, with punctuation
  beside other characters, but "[UNK]", the substitute for unknown words) get
  a unique placeholder: U+FFFD and the id. Without `split_on_punc`, U+FFFD +
  every lookup key starting with "#" follows, for the words starting with "#"
  (see the module docstring).

  Args:
    vocab: a `tokenization.load_vocab` dictionary.
    split_on_punc: the tokenizer's option.

  Returns:
    (tokens, ids): a list of distinct strings, the first
    `max(vocab.values()) + 1` of them standing for their own index, and the
    list of the original id of each (None with `split_on_punc`: the indices).
  """
  tokens = [_NOT_IN_WORDS + "%d" % i for i in range(max(vocab.values()) + 1)]
  ids = list(range(len(tokens)))
  for token, index in vocab.items():
    if _is_lookup_key(token, split_on_punc) or token == UNK_TOKEN:
      tokens[index] = token
  if split_on_punc:
    return tokens, None
  for token, index in vocab.items():
    if token.startswith("#") and _is_lookup_key(token, split_on_punc,
                                                 whole=True):
      tokens.append(_NOT_IN_WORDS + token)
      ids.append(index)
  return tokens, ids


def _map_code_points(values, row_splits, table_values, table_splits):
  """Replaces every code point by its row of a ragged mapping table.

  Args:
    values: int32 [num_chars], the code points of all texts.
    row_splits: int64 [batch + 1], text i is values[row_splits[i]:...[i+1]].
    table_values: int32 [table_size], see `unicode_tables.MappingTable`.
    table_splits: int32 [DOMAIN_SIZE + 1].

  Returns:
    (new_values int32 [new_num_chars], new_row_splits int64 [batch + 1]).
  """
  rows = _domain_index(values)  # [num_chars]
  starts = tf.gather(table_splits, rows)  # [num_chars]
  lengths = tf.gather(table_splits, rows + 1) - starts  # [num_chars]
  positions = tf.ragged.range(starts, starts + lengths).flat_values
  new_values = tf.gather(table_values, positions)  # [new_num_chars]
  sources = tf.repeat(values, lengths)  # [new_num_chars]
  new_values = tf.where(new_values == unicode_tables.SAME, sources, new_values)
  ends = tf.concat(
      [[0], tf.cumsum(tf.cast(lengths, tf.int64))], axis=0)  # [num_chars + 1]
  return new_values, tf.gather(ends, row_splits)


def _domain_index(code_points):
  """The graph version of `unicode_tables.domain_index` on an int32 tensor."""
  in_tags = ((code_points >= unicode_tables.TAGS_START) &
             (code_points < unicode_tables.TAGS_END))
  return tf.where(
      code_points < unicode_tables.PLANE_LIMIT,
      code_points,
      tf.where(in_tags,
               code_points - (unicode_tables.TAGS_START -
                              unicode_tables.PLANE_LIMIT),
               unicode_tables.IDENTITY_ROW))


def _row_bounds(row_splits):
  """Returns (start, end) int64 [num_chars] of the text holding each value."""
  row_ids = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int64)
  return tf.gather(row_splits, row_ids), tf.gather(row_splits, row_ids + 1)


def _apply_final_sigma(values, row_splits, sigma_class):
  """Lower-cases capital sigmas in Final_Sigma context to U+03C2 (as str.lower).

  A capital sigma is final when the nearest character before it that is not
  case ignorable is cased, and the nearest such character after it is not
  cased (or absent). The search stops at spaces (class "other") and text ends.

  Args:
    values: int32 [num_chars], cleaned code points of all texts.
    row_splits: int64 [batch + 1].
    sigma_class: int8 [DOMAIN_SIZE], `unicode_tables.SIGMA_*` of each row.

  Returns:
    int32 [num_chars], `values` with final capital sigmas replaced.
  """
  classes = tf.gather(sigma_class, _domain_index(values))  # [num_chars]
  anchors = classes != unicode_tables.SIGMA_CASE_IGNORABLE  # [num_chars]
  anchor_positions = tf.cast(tf.where(anchors)[:, 0], tf.int64)  # [num_anchors]
  num_anchors = tf.shape(anchor_positions, out_type=tf.int64)[0]
  anchors_before = tf.cumsum(tf.cast(anchors, tf.int64), exclusive=True)
  sigmas = tf.where(values == unicode_tables.CAPITAL_SIGMA)[:, 0]
  # sigmas: int64 [num_sigmas], their positions.
  start, end = _row_bounds(row_splits)
  start, end = tf.gather(start, sigmas), tf.gather(end, sigmas)
  # The sigma is an anchor itself: its neighbours are the anchors k-1 and k+1.
  k = tf.gather(anchors_before, sigmas)  # [num_sigmas]
  previous = tf.gather(anchor_positions, tf.maximum(k - 1, 0))
  previous_cased = (
      (k > 0) & (previous >= start) &
      (tf.gather(classes, previous) == unicode_tables.SIGMA_CASED))
  has_next = k + 1 < num_anchors
  following = tf.gather(anchor_positions, tf.minimum(k + 1, num_anchors - 1))
  next_cased = (has_next & (following < end) &
                (tf.gather(classes, following) == unicode_tables.SIGMA_CASED))
  final = previous_cased & ~next_cased  # [num_sigmas]
  return tf.tensor_scatter_nd_update(
      values, tf.boolean_mask(sigmas, final)[:, tf.newaxis],
      tf.fill(tf.reduce_sum(tf.cast(final, tf.int32))[tf.newaxis],
              tf.constant(unicode_tables.FINAL_SIGMA, tf.int32)))


def _canonical_reorder(values, row_splits, combining_class):
  """Sorts each run of combining characters by combining class (NFD order).

  Args:
    values: int32 [num_chars], decomposed code points of all texts.
    row_splits: int64 [batch + 1].
    combining_class: int16 [DOMAIN_SIZE], see `unicode_tables.UnicodeTables`.

  Returns:
    int32 [num_chars], `values` in canonical order within each text.
  """
  ccc = tf.cast(tf.gather(combining_class, _domain_index(values)), tf.int64)
  ccc = ccc % unicode_tables.REORDERS  # [num_chars], flag bits dropped
  start, _ = _row_bounds(row_splits)
  row_starts = tf.range(tf.size(values, out_type=tf.int64)) == start
  # A run belongs to the starter (class 0) before it, or to its text's start.
  group = tf.cumsum(tf.cast((ccc == 0) | row_starts, tf.int64))
  order = tf.argsort(group * unicode_tables.REORDERS + ccc, stable=True)
  return tf.gather(values, order)


def _drop_characters(values, kinds, row_splits):
  """Removes the characters of kind KIND_DROP.

  Args:
    values: int32 [num_chars], code points of all texts.
    kinds: int32 [num_chars], their `unicode_tables` KIND_*.
    row_splits: int64 [batch + 1].

  Returns:
    (values, kinds, row_splits) without the dropped characters.
  """
  kept = kinds != unicode_tables.KIND_DROP  # [num_chars]
  kept_before = tf.concat([[0], tf.cumsum(tf.cast(kept, tf.int64))], 0)
  return (tf.boolean_mask(values, kept), tf.boolean_mask(kinds, kept),
          tf.gather(kept_before, row_splits))


def _long_words_unknown(words, lengths):
  """Replaces the words longer than 200 characters by "[UNK]".

  Args:
    words: string Tensor [num_words].
    lengths: int Tensor [num_words], their lengths in characters.

  Returns:
    string Tensor [num_words].
  """
  return tf.where(lengths > MAX_INPUT_CHARS_PER_WORD, UNK_TOKEN, words)


class FastBertTokenizer(tf.Module):
  """In-graph BERT tokenizer giving exactly `FullTokenizer`'s ids.

  Ids are int64 (`tokenize` returns an int64 RaggedTensor), the dtype of
  `tf.train.Example` int64 features and of Keras embedding inputs.

  Attributes:
    vocab_file: `tf.saved_model.Asset` of the vocabulary file.
    do_lower_case: whether text is lower cased and accents are stripped.
    split_on_punc: whether punctuation characters are words of their own.
    vocab_size: the number of ids (lines of the vocabulary).
    cls_id, sep_id, mask_id, unk_id: Python ints, ids of "[CLS]", "[SEP]",
      "[MASK]", "[UNK]" (None for a token the vocabulary lacks; "[UNK]" is
      required).
    pad_id: Python int, id of "[PAD]", or 0 when the vocabulary has none.
  """

  def __init__(self, vocab_file, do_lower_case=True, split_on_punc=True,
               name=None):
    """Builds the tables and the WordPiece model.

    Args:
      vocab_file: path of the WordPiece vocabulary (one token a line).
      do_lower_case: as `FullTokenizer`'s.
      split_on_punc: as `FullTokenizer`'s (Model Garden's option).
      name: optional `tf.Module` name.

    Raises:
      ValueError: if the vocabulary is missing, empty, or has no "[UNK]".
    """
    super().__init__(name=name)
    vocab = tokenization.load_vocab(vocab_file)
    if UNK_TOKEN not in vocab:
      raise ValueError("Vocabulary file %r has no %s token, which WordPiece "
                       "needs for unknown words." % (vocab_file, UNK_TOKEN))
    self.vocab_file = tf.saved_model.Asset(vocab_file)
    self.do_lower_case = bool(do_lower_case)
    self.split_on_punc = bool(split_on_punc)
    self.vocab_size = max(vocab.values()) + 1
    self.unk_id = vocab[UNK_TOKEN]
    self.cls_id = vocab.get("[CLS]")
    self.sep_id = vocab.get("[SEP]")
    self.mask_id = vocab.get("[MASK]")
    self.pad_id = vocab.get("[PAD]", 0)
    wordpiece_vocabulary, original_ids = _wordpiece_vocabulary(
        vocab, self.split_on_punc)
    if original_ids is not None:
      self._original_ids = tf.Variable(
          tf.constant(original_ids, tf.int64), trainable=False,
          name="original_ids")
    self._wordpiece = tf_text.FastWordpieceTokenizer(
        wordpiece_vocabulary, suffix_indicator=_SUFFIX_INDICATOR,
        # A word of at most 200 characters has at most 800 UTF-8 bytes;
        # longer words are replaced by "[UNK]" before this step.
        max_bytes_per_word=4 * MAX_INPUT_CHARS_PER_WORD,
        token_out_type=tf.int64, unknown_token=UNK_TOKEN,
        no_pretokenization=True)
    if self.split_on_punc:
      # On printable ASCII, FastWordpieceTokenizer's own splitting on
      # whitespace and punctuation is the original's, and its byte limit is
      # the character limit.
      self._ascii_wordpiece = tf_text.FastWordpieceTokenizer(
          wordpiece_vocabulary, suffix_indicator=_SUFFIX_INDICATOR,
          max_bytes_per_word=MAX_INPUT_CHARS_PER_WORD,
          token_out_type=tf.int64, unknown_token=UNK_TOKEN,
          no_pretokenization=False)

    tables = unicode_tables.get_tables(self.do_lower_case, self.split_on_punc)
    self._basic_code = tf.Variable(tables.basic_code, trainable=False,
                                   name="basic_code")
    if self.do_lower_case:
      self._clean = self._mapping_variables(tables.clean, "clean")
      self._lower = self._mapping_variables(tables.lower, "lower")
      self._split = self._mapping_variables(tables.split, "split")
      self._sigma_class = tf.Variable(tables.sigma_class, trainable=False,
                                      name="sigma_class")
      self._combining_class = tf.Variable(tables.combining_class,
                                          trainable=False,
                                          name="combining_class")

  @staticmethod
  def _mapping_variables(table, name):
    """Returns (values, splits) of a `MappingTable` as constant variables."""
    return (tf.Variable(table.values, trainable=False, name=name + "_values"),
            tf.Variable(table.splits, trainable=False, name=name + "_splits"))

  def _basic_step_by_step(self, values, row_splits):
    """The basic step of lower casing for texts with context-dependent chars.

    Args:
      values: int32 [num_chars], decoded code points of all texts.
      row_splits: int64 [batch + 1].

    Returns:
      (values int32, kinds int32, row_splits int64 [batch + 1]): the output
      code points, with words separated by KIND_SPACE spaces.
    """
    values, row_splits = _map_code_points(values, row_splits, *self._clean)
    values = _apply_final_sigma(values, row_splits, self._sigma_class)
    values, row_splits = _map_code_points(values, row_splits, *self._lower)
    values = _canonical_reorder(values, row_splits, self._combining_class)
    values, row_splits = _map_code_points(values, row_splits, *self._split)
    kinds = tf.where(values == unicode_tables.SPACE, unicode_tables.KIND_SPACE,
                     unicode_tables.KIND_NORMAL)
    return values, kinds, row_splits

  def basic_code_points(self, texts):
    """Runs the basic step on code points.

    Args:
      texts: string Tensor [batch].

    Returns:
      (values int32 [num_chars], kinds int32 [num_chars], row_splits int64
      [batch + 1]): output code points of text i in
      values[row_splits[i]:row_splits[i + 1]], each of a kind of
      `unicode_tables` (KIND_NORMAL, KIND_ISOLATED: a word of its own,
      KIND_SPACE: a separator, KIND_DROP: to be dropped).
    """
    chars = tf.strings.unicode_decode(texts, "UTF-8", errors="ignore")
    values, row_splits = chars.flat_values, chars.row_splits
    codes = tf.gather(self._basic_code, _domain_index(values))  # [num_chars]
    kinds = codes % unicode_tables.KIND_RADIX

    def _one_lookup():
      return values + codes // unicode_tables.KIND_RADIX, kinds, row_splits

    if not self.do_lower_case:
      return _one_lookup()
    return tf.cond(
        tf.reduce_any(kinds == unicode_tables.KIND_COMPLEX),
        lambda: self._basic_step_by_step(values, row_splits), _one_lookup)

  def tokenize_words(self, texts):
    """Runs the basic step and returns the words.

    Args:
      texts: string Tensor [batch].

    Returns:
      string RaggedTensor [batch, (num_words)]: `BasicTokenizer.tokenize` of
      each text, words longer than 200 characters replaced by "[UNK]".
    """
    values, kinds, row_splits = self.basic_code_points(texts)
    values, kinds, row_splits = tf.cond(
        tf.reduce_any(kinds == unicode_tables.KIND_DROP),
        lambda: _drop_characters(values, kinds, row_splits),
        lambda: (values, kinds, row_splits))
    num_chars = tf.size(values, out_type=tf.int64)
    row_starts = tf.scatter_nd(
        row_splits[:, tf.newaxis], tf.ones_like(row_splits),
        num_chars[tf.newaxis] + 1)[:-1] > 0  # [num_chars]
    # Kinds are now KIND_NORMAL, KIND_SPACE or KIND_ISOLATED.
    breaks = kinds >= unicode_tables.KIND_SPACE  # [num_chars]
    in_word = kinds != unicode_tables.KIND_SPACE
    starts = in_word & (
        breaks | tf.concat([[True], breaks[:-1]], 0) | row_starts)
    # Position of each character among the characters in words.
    in_word_before = tf.cumsum(tf.cast(in_word, tf.int64), exclusive=True)
    word_splits = tf.concat(
        [tf.boolean_mask(in_word_before, starts),
         tf.reduce_sum(tf.cast(in_word, tf.int64))[tf.newaxis]], 0)
    word_chars = tf.RaggedTensor.from_row_splits(
        tf.boolean_mask(values, in_word), word_splits,
        validate=False)  # [num_words, (chars)]
    words = _long_words_unknown(
        tf.strings.unicode_encode(word_chars, "UTF-8"),
        word_chars.row_lengths())  # [num_words]
    words_before = tf.concat(
        [[0], tf.cumsum(tf.cast(starts, tf.int64))], 0)  # [num_chars + 1]
    return tf.RaggedTensor.from_row_splits(
        words, tf.gather(words_before, row_splits), validate=False)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def tokenize(self, texts):
    """Tokenizes texts into WordPiece ids.

    Args:
      texts: string Tensor [batch] (UTF-8; invalid bytes are dropped).

    Returns:
      int64 RaggedTensor [batch, (num_tokens)]:
      `FullTokenizer.convert_tokens_to_ids(FullTokenizer.tokenize(text))`.
    """
    return self.tokenize_ops(texts)

  def tokenize_ops(self, texts):
    """The ops of `tokenize`, run where called: eagerly outside tf.function.

    The same ids as `tokenize`. Eagerly they run op by op (tens of ms a
    batch) without `tokenize`'s tracing, about 1.5 s in each process, which
    pays off only over many calls.

    Args:
      texts: string Tensor [batch].

    Returns:
      int64 RaggedTensor [batch, (num_tokens)], as `tokenize`.
    """
    # Printable ASCII texts (tabs and newlines allowed) take a shortcut.
    is_ascii = tf.strings.regex_full_match(texts, "[\\t\\n\\r -~]*")  # [batch]
    ascii_rows = tf.where(is_ascii)[:, 0]
    other_rows = tf.where(~is_ascii)[:, 0]
    ascii_texts = tf.gather(texts, ascii_rows)
    if self.do_lower_case:
      ascii_texts = tf.strings.lower(ascii_texts)  # ASCII only, as str.lower.
    if self.split_on_punc:
      ascii_ids = self._ascii_wordpiece.tokenize(ascii_texts)
    else:
      ascii_words = tf.strings.split(ascii_texts)  # [num_ascii, (words)]
      ascii_ids = self.wordpiece_ids(ascii_words.with_flat_values(
          _long_words_unknown(ascii_words.flat_values, tf.strings.length(
              ascii_words.flat_values))))
    other_ids = self.wordpiece_ids(
        self.tokenize_words(tf.gather(texts, other_rows)))
    ids = tf.concat([ascii_ids, other_ids], axis=0)  # [batch, (tokens)]
    return tf.gather(ids, tf.argsort(tf.concat([ascii_rows, other_rows], 0)))

  def wordpiece_ids(self, words):
    """Runs the WordPiece step on the words of `tokenize_words`.

    Args:
      words: string RaggedTensor [batch, (num_words)].

    Returns:
      int64 RaggedTensor [batch, (num_tokens)], the ids of each text's words.
    """
    if self.split_on_punc:
      return self._wordpiece.tokenize(words).merge_dims(1, 2)
    # Words starting with "#" match the U+FFFD tokens (module docstring).
    marked = tf.strings.regex_replace(words.flat_values, "^#",
                                      _NOT_IN_WORDS + "#")
    ids = self._wordpiece.tokenize(words.with_flat_values(marked))
    ids = ids.merge_dims(1, 2)
    return ids.with_flat_values(tf.gather(self._original_ids,
                                          ids.flat_values))
