# coding=utf-8
"""Tokenization classes of the original BERT: the same API, the same tokens.

This module keeps the public API and the exact behaviour of the original
(google-research/bert) `tokenization.py`: `FullTokenizer` runs
`BasicTokenizer` (text cleaning, spaces around CJK ideographs, optional lower
casing with accent stripping, punctuation splitting) and then
`WordpieceTokenizer` (greedy longest-match-first WordPiece with the "##"
continuation prefix). Character classes come from Python's
`unicodedata`, as in the original.

With `spm_model_file`, `FullTokenizer` is ALBERT's (google-research/albert
`tokenization.py`): `preprocess_text` (spaces collapsed, NFKD, combining
characters dropped, optional lower casing), then the SentencePiece model's
pieces with `encode_pieces`' fix for a piece that ends in a digit and a
comma; ids are the model's own.

It is also a drop-in for Model Garden's copy of the module
(`official.nlp.tools.tokenization`): `split_on_punc` of `BasicTokenizer` and
`FullTokenizer`, `encode_ids`, the `sample` argument of `encode_pieces` and
`FullSentencePieceTokenizer`. Where that copy's defaults or signatures differ
from the originals' (`max_input_chars_per_word` 400 there, 200 here; the third
positional argument of `FullTokenizer` and `encode_pieces`; the digit-comma
fix), the originals' are kept.

For an in-graph tokenizer producing the same ids see `bert_tf.text`.
"""

import collections
import re
import unicodedata

import tensorflow as tf

# The released checkpoints whose casing is known, by directory name.
_LOWER_CASED_MODELS = (
    "uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12")
_CASED_MODELS = (
    "cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
    "multi_cased_L-12_H-768_A-12")


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Checks whether the casing flag is consistent with the checkpoint's name.

  The casing is not stored in `bert_config.json`, so it is guessed from the
  directory name of a released checkpoint (e.g. `uncased_L-12_H-768_A-12`).
  Unknown names pass.

  Args:
    do_lower_case: bool, the value of `--do_lower_case`.
    init_checkpoint: str or None, the value of `--init_checkpoint`.

  Raises:
    ValueError: if the checkpoint is a known cased model and `do_lower_case`
      is True, or a known lower-cased model and it is False.
  """
  if not init_checkpoint:
    return

  m = re.match("^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
  if m is None:
    return

  model_name = m.group(1)
  if model_name in _LOWER_CASED_MODELS and not do_lower_case:
    actual_flag, case_name, opposite_flag = "False", "lowercased", "True"
  elif model_name in _CASED_MODELS and do_lower_case:
    actual_flag, case_name, opposite_flag = "True", "cased", "False"
  else:
    return

  raise ValueError(
      "You passed in `--do_lower_case=%s` with `--init_checkpoint=%s`. "
      "However, `%s` seems to be a %s model, so you "
      "should pass in `--do_lower_case=%s` so that the fine-tuning matches "
      "how the model was pre-training. If this error is wrong, please "
      "just comment out this check." % (actual_flag, init_checkpoint,
                                        model_name, case_name, opposite_flag))


def convert_to_unicode(text):
  """Converts `text` to `str`, decoding bytes as UTF-8 (invalid bytes dropped).

  Args:
    text: str or bytes.

  Returns:
    The text as a `str`.

  Raises:
    ValueError: if `text` is neither str nor bytes.
  """
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise ValueError("Unsupported string type: %s" % (type(text)))


def printable_text(text):
  """Returns `text` as a `str` suitable for `print` or logging.

  Args:
    text: str or bytes (decoded as UTF-8, invalid bytes dropped).

  Returns:
    The text as a `str`.

  Raises:
    ValueError: if `text` is neither str nor bytes.
  """
  return convert_to_unicode(text)


def load_vocab(vocab_file):
  """Loads a vocabulary file (one token a line) into an ordered dictionary.

  As in the original, every line is stripped of surrounding whitespace and the
  line number is its id; when two lines strip to the same token, the token keeps
  its first position in the dictionary but takes the id of its last line.

  Args:
    vocab_file: path of the vocabulary file (any path `tf.io.gfile` reads).

  Returns:
    A `collections.OrderedDict` from token (str) to id (int).

  Raises:
    ValueError: if the file does not exist or holds no line.
  """
  if not tf.io.gfile.exists(vocab_file):
    raise ValueError("Vocabulary file %r does not exist." % (vocab_file,))
  with tf.io.gfile.GFile(vocab_file, "r") as reader:
    # Read at once, cut as `readline` does: after each "\n", and the text
    # after the last one is a line unless it is empty.
    lines = convert_to_unicode(reader.read()).split("\n")
  if not lines[-1]:
    lines.pop()
  vocab = collections.OrderedDict()
  for index, line in enumerate(lines):
    vocab[line.strip()] = index
  if not vocab:
    raise ValueError("Vocabulary file %r is empty: expected one WordPiece "
                     "token per line." % (vocab_file,))
  return vocab


def convert_by_vocab(vocab, items):
  """Converts a sequence of tokens or ids through `vocab`, as the original.

  Args:
    vocab: dict from item to item (token -> id or id -> token).
    items: iterable of keys of `vocab`.

  Returns:
    A list of `vocab[item]`.

  Raises:
    KeyError: for an item that is not a key of `vocab` (the original's
      behaviour; `FullTokenizer.tokenize` only produces vocabulary tokens).
  """
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
  """Converts tokens to ids with a token -> id `vocab` (`convert_by_vocab`)."""
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
  """Converts ids to tokens with an id -> token `inv_vocab`."""
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
  """Strips `text` and splits it on whitespace (Python's `str.split()`).

  Args:
    text: str.

  Returns:
    A list of the non-empty whitespace-separated pieces.
  """
  text = text.strip()
  if not text:
    return []
  return text.split()


# SentencePiece's word-start marker (U+2581).
SPIECE_UNDERLINE = "\u2581"


def preprocess_text(inputs, remove_space=True, lower=False):
  """ALBERT's text normalization before SentencePiece.

  Args:
    inputs: str.
    remove_space: strip the text and collapse runs of whitespace (Python's
      `str.split()`) into one space.
    lower: lower case (`str.lower()`) at the end.

  Returns:
    The text in NFKD with every combining character (nonzero canonical
    combining class) removed, then lower cased if `lower`.
  """
  outputs = inputs
  if remove_space:
    outputs = " ".join(inputs.strip().split())
  outputs = unicodedata.normalize("NFKD", outputs)
  outputs = "".join(c for c in outputs if not unicodedata.combining(c))
  if lower:
    outputs = outputs.lower()
  return outputs


# SentencePiece sampling of `encode_pieces(..., sample=True)`, as ALBERT and
# Model Garden: from the 64 best segmentations, smoothing parameter 0.1.
SAMPLE_NBEST_SIZE = 64
SAMPLE_ALPHA = 0.1


def encode_pieces(sp_model, text, return_unicode=True, sample=False):
  """SentencePiece pieces of `text`, with ALBERT's digit-comma fix.

  A piece longer than one character that ends in a comma after a digit
  (`str.isdigit`) is replaced by the pieces of itself without the comma and
  without "\u2581" (SentencePiece adds its own word-start marker in front),
  followed by ",". This is what the original computes under Python 3, where
  its attempt to drop that added marker (a str compared with a bytes
  constant) never applies; Model Garden's copy drops it, so its pieces differ
  around such commas (e.g. "1990," inside a word).

  Args:
    sp_model: a `sentencepiece.SentencePieceProcessor`.
    text: str (already `preprocess_text`-ed).
    return_unicode: ALBERT's argument, which changed the output only under
      Python 2; pieces are always str.
    sample: draw a segmentation (SentencePiece subword regularization:
      `SampleEncodeAsPieces(text, 64, 0.1)`, from the library's own random
      generator, see `sentencepiece.set_random_generator_seed`) instead of
      the best one. The digit-comma fix re-encodes without sampling.

  Returns:
    A list of str pieces.
  """
  del return_unicode  # Pieces are str under Python 3 either way.
  if sample:
    pieces = sp_model.SampleEncodeAsPieces(text, SAMPLE_NBEST_SIZE,
                                           SAMPLE_ALPHA)
  else:
    pieces = sp_model.EncodeAsPieces(text)
  new_pieces = []
  for piece in pieces:
    if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
      new_pieces.extend(
          sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, "")))
      new_pieces.append(piece[-1])
    else:
      new_pieces.append(piece)
  return new_pieces


def encode_ids(sp_model, text, sample=False):
  """The model's ids of `encode_pieces(sp_model, text, sample=sample)`.

  Args:
    sp_model: a `sentencepiece.SentencePieceProcessor`.
    text: str (already `preprocess_text`-ed).
    sample: as `encode_pieces`'.

  Returns:
    A list of int ids (`PieceToId`: a piece the model lacks gets `<unk>`'s).
  """
  return [sp_model.PieceToId(piece)
          for piece in encode_pieces(sp_model, text, sample=sample)]


class SentencePieceVocab(dict):
  """Piece -> id of a SentencePiece model; an unknown piece gives `<unk>`'s id.

  A plain dict of every piece of the model (ALBERT's `FullTokenizer.vocab`)
  whose lookup of any other string returns the unknown id, as the model's
  `PieceToId` does (`encode_pieces` can return text the model has no piece
  for, e.g. unseen characters). A bytes piece is looked up as its UTF-8 text,
  as the originals' `convert_tokens_to_ids` does.
  """

  def __init__(self, sp_model):
    super().__init__((sp_model.IdToPiece(i), i)
                     for i in range(sp_model.GetPieceSize()))
    self.unk_id = sp_model.unk_id()

  def __missing__(self, piece):
    if isinstance(piece, bytes):
      return self[convert_to_unicode(piece)]
    return self.unk_id


def load_sentencepiece_model(spm_model_file):
  """Loads a SentencePiece model (any path `tf.io.gfile` reads).

  Raises:
    ValueError: if the file does not exist or is not a SentencePiece model.
  """
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.exists(spm_model_file):
    raise ValueError("SentencePiece model file %r does not exist." %
                     (spm_model_file,))
  with tf.io.gfile.GFile(spm_model_file, "rb") as f:
    serialized = f.read()
  sp_model = spm.SentencePieceProcessor()
  try:
    sp_model.LoadFromSerializedProto(serialized)
  except (RuntimeError, TypeError, OSError) as e:
    raise ValueError("%r is not a SentencePiece model: %s" %
                     (spm_model_file, e)) from e
  return sp_model


def _check_sentencepiece_vocab(vocab_file, vocab):
  """Checks an optional vocabulary file against the SentencePiece model.

  Lines are read as ALBERT's `load_vocab` (the first whitespace-separated
  field: the model's `.vocab` file has "piece<TAB>score" lines).

  Raises:
    ValueError: if the file's tokens are not the model's pieces in id order.
  """
  with tf.io.gfile.GFile(vocab_file, "r") as reader:
    tokens = [line.strip().split()[0] if line.strip() else " "
              for line in reader]
  pieces = list(vocab)
  if tokens != pieces:
    index = next((i for i, (t, p) in enumerate(zip(tokens, pieces)) if t != p),
                 min(len(tokens), len(pieces)))
    raise ValueError(
        "vocab file %s does not match the SentencePiece model: %d tokens for "
        "%d pieces, first difference at id %d (%r in the file, %r in the "
        "model)" % (vocab_file, len(tokens), len(pieces), index,
                    tokens[index] if index < len(tokens) else None,
                    pieces[index] if index < len(pieces) else None))


class FullSentencePieceTokenizer(object):
  """Model Garden's SentencePiece tokenizer: pieces of the text as given.

  The interface of `FullTokenizer` over a SentencePiece model, without
  `preprocess_text` (Model Garden's scripts call it themselves):
  `tokenize(text)` is `encode_pieces(sp_model, text)`. `FullTokenizer(None,
  do_lower_case, spm_model_file)` is this after `preprocess_text`.

  Attributes:
    sp_model: the `sentencepiece.SentencePieceProcessor`.
    vocab: `SentencePieceVocab`, every piece -> its id (unknown: `<unk>`'s).
    inv_vocab: dict, id -> piece.
  """

  def __init__(self, sp_model_file):
    """Loads the model.

    Args:
      sp_model_file: path of a SentencePiece model (any path `tf.io.gfile`
        reads).

    Raises:
      ValueError: if the file does not exist or is not a SentencePiece model.
    """
    self.sp_model = load_sentencepiece_model(sp_model_file)
    self.vocab = SentencePieceVocab(self.sp_model)
    self.inv_vocab = {v: k for k, v in self.vocab.items()}

  def tokenize(self, text):
    """Tokenizes `text` into the model's pieces, without preprocessing.

    Args:
      text: str, or UTF-8 bytes (invalid bytes dropped).

    Returns:
      A list of str pieces: `encode_pieces(sp_model, text)`.
    """
    return encode_pieces(self.sp_model, convert_to_unicode(text))

  def convert_tokens_to_ids(self, tokens):
    """Maps pieces to ids (a piece the model lacks to `<unk>`'s id)."""
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    """Maps ids to pieces."""
    return convert_by_vocab(self.inv_vocab, ids)


class FullTokenizer(object):
  """Runs end-to-end tokenization: BasicTokenizer, then WordpieceTokenizer.

  With `spm_model_file` (ALBERT): `preprocess_text`, then the SentencePiece
  model's pieces (`encode_pieces`); `vocab` maps every piece to its id.
  """

  def __init__(self, vocab_file, do_lower_case=True, spm_model_file=None,
               split_on_punc=True):
    """Constructs a FullTokenizer.

    Args:
      vocab_file: path of the WordPiece vocabulary (one token a line). With
        `spm_model_file` it is optional (None) and, if given, must list the
        model's pieces in id order (e.g. the model's `.vocab` file).
      do_lower_case: whether to lower case the input (and, for WordPiece,
        strip accents; SentencePiece always strips them).
      spm_model_file: path of a SentencePiece model, or None for WordPiece.
        (ALBERT's third argument; Model Garden's third is `split_on_punc`,
        which goes by keyword here.)
      split_on_punc: WordPiece only (Model Garden's option): False keeps
        punctuation inside words (`BasicTokenizer`).

    Raises:
      TypeError: if `spm_model_file` is a bool (a Model Garden call passing
        `split_on_punc` as the third positional argument).
      ValueError: if neither file is given, a file is missing or bad, or
        `split_on_punc` is False with `spm_model_file`.
    """
    if isinstance(spm_model_file, bool):
      raise TypeError(
          "FullTokenizer's third argument is spm_model_file (a path or None, "
          "as in google-research/albert), got %r; pass Model Garden's "
          "split_on_punc by keyword: FullTokenizer(vocab_file, do_lower_case, "
          "split_on_punc=%r)" % (spm_model_file, spm_model_file))
    self.do_lower_case = do_lower_case
    self.sp_model = None
    if spm_model_file:
      if not split_on_punc:
        raise ValueError("split_on_punc=False applies to WordPiece only, not "
                         "with spm_model_file=%r" % (spm_model_file,))
      self._sentencepiece = FullSentencePieceTokenizer(spm_model_file)
      self.sp_model = self._sentencepiece.sp_model
      self.vocab = self._sentencepiece.vocab
      self.inv_vocab = self._sentencepiece.inv_vocab
      if vocab_file:
        _check_sentencepiece_vocab(vocab_file, self.vocab)
    else:
      if not vocab_file:
        raise ValueError("FullTokenizer needs a vocab_file (WordPiece) or an "
                         "spm_model_file (SentencePiece)")
      self.vocab = load_vocab(vocab_file)
      self.inv_vocab = {v: k for k, v in self.vocab.items()}
      self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case,
                                            split_on_punc=split_on_punc)
      self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)

  def tokenize(self, text):
    """Tokenizes `text` (str, or UTF-8 bytes) into a list of tokens.

    Args:
      text: str, or UTF-8 bytes (invalid bytes dropped).

    Returns:
      A list of str tokens: WordPiece tokens of the vocabulary, or
      SentencePiece pieces of `preprocess_text(text, lower=do_lower_case)`.
    """
    if self.sp_model is not None:
      return self._sentencepiece.tokenize(preprocess_text(
          convert_to_unicode(text), lower=self.do_lower_case))
    split_tokens = []
    for token in self.basic_tokenizer.tokenize(text):
      for sub_token in self.wordpiece_tokenizer.tokenize(token):
        split_tokens.append(sub_token)
    return split_tokens

  def convert_tokens_to_ids(self, tokens):
    """Maps tokens to ids (SentencePiece: an unknown piece to `<unk>`'s id)."""
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    """Maps ids to tokens."""
    return convert_by_vocab(self.inv_vocab, ids)


class BasicTokenizer(object):
  """Runs basic tokenization (punctuation splitting, lower casing, etc.)."""

  def __init__(self, do_lower_case=True, split_on_punc=True):
    """Constructs a BasicTokenizer.

    Args:
      do_lower_case: Whether to lower case the input (and strip accents).
      split_on_punc: Whether every punctuation character is a word of its own
        (the original's behaviour); False (Model Garden's option) keeps it
        inside its whitespace-separated word, e.g. "how?" stays one word,
        which keeps detokenization simple.
    """
    self.do_lower_case = do_lower_case
    self.split_on_punc = split_on_punc

  def tokenize(self, text):
    """Tokenizes a piece of text into words (and punctuation marks).

    Args:
      text: str, or UTF-8 bytes (invalid bytes dropped).

    Returns:
      A list of str tokens.
    """
    text = convert_to_unicode(text)
    text = self._clean_text(text)
    # Spaces around CJK ideographs (applied to every model since November
    # 2018; it does not matter for English text).
    text = self._tokenize_chinese_chars(text)

    orig_tokens = whitespace_tokenize(text)
    split_tokens = []
    for token in orig_tokens:
      if self.do_lower_case:
        token = token.lower()
        token = self._run_strip_accents(token)
      if self.split_on_punc:
        split_tokens.extend(self._run_split_on_punc(token))
      else:
        split_tokens.append(token)

    return whitespace_tokenize(" ".join(split_tokens))

  def _run_strip_accents(self, text):
    """Strips accents: NFD, then drops the nonspacing marks (category Mn)."""
    text = unicodedata.normalize("NFD", text)
    output = []
    for char in text:
      if unicodedata.category(char) == "Mn":
        continue
      output.append(char)
    return "".join(output)

  def _run_split_on_punc(self, text):
    """Splits `text` so that every punctuation character is its own piece."""
    output = []
    start_new_word = True
    for char in text:
      if _is_punctuation(char):
        output.append([char])
        start_new_word = True
      else:
        if start_new_word:
          output.append([])
        start_new_word = False
        output[-1].append(char)
    return ["".join(x) for x in output]

  def _tokenize_chinese_chars(self, text):
    """Adds whitespace around any CJK character."""
    output = []
    for char in text:
      if self._is_chinese_char(ord(char)):
        output.append(" ")
        output.append(char)
        output.append(" ")
      else:
        output.append(char)
    return "".join(output)

  def _is_chinese_char(self, cp):
    """Checks whether code point `cp` is in a CJK Unified Ideographs block.

    Hangul, Hiragana and Katakana are other blocks: those scripts separate
    words with spaces and are handled like all other languages.
    """
    return is_cjk_code_point(cp)

  def _clean_text(self, text):
    """Drops NUL, U+FFFD and control characters; maps whitespace to " "."""
    output = []
    for char in text:
      cp = ord(char)
      if cp == 0 or cp == 0xfffd or _is_control(char):
        continue
      if _is_whitespace(char):
        output.append(" ")
      else:
        output.append(char)
    return "".join(output)


class WordpieceTokenizer(object):
  """Runs WordPiece tokenization."""

  def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
    """Constructs a WordpieceTokenizer.

    Args:
      vocab: dict (or set) of the vocabulary's tokens.
      unk_token: the token emitted for a word that cannot be split.
      max_input_chars_per_word: words with more characters become `unk_token`.
    """
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word

  def tokenize(self, text):
    """Tokenizes a piece of text into its word pieces.

    This uses a greedy longest-match-first algorithm: for example "unaffable"
    becomes ["un", "##aff", "##able"]. A word of which any part has no match,
    or longer than `max_input_chars_per_word`, becomes one `unk_token`.

    Args:
      text: a single token or whitespace separated tokens, already passed
        through `BasicTokenizer`.

    Returns:
      A list of wordpiece tokens.
    """
    text = convert_to_unicode(text)

    output_tokens = []
    for token in whitespace_tokenize(text):
      chars = list(token)
      if len(chars) > self.max_input_chars_per_word:
        output_tokens.append(self.unk_token)
        continue

      is_bad = False
      start = 0
      sub_tokens = []
      while start < len(chars):
        end = len(chars)
        cur_substr = None
        while start < end:
          substr = "".join(chars[start:end])
          if start > 0:
            substr = "##" + substr
          if substr in self.vocab:
            cur_substr = substr
            break
          end -= 1
        if cur_substr is None:
          is_bad = True
          break
        sub_tokens.append(cur_substr)
        start = end

      if is_bad:
        output_tokens.append(self.unk_token)
      else:
        output_tokens.extend(sub_tokens)
    return output_tokens


def is_cjk_code_point(cp):
  """Returns whether code point `cp` is in a CJK Unified Ideographs block
  (or a CJK compatibility ideographs block), which the original surrounds with
  spaces."""
  return ((cp >= 0x4E00 and cp <= 0x9FFF) or
          (cp >= 0x3400 and cp <= 0x4DBF) or
          (cp >= 0x20000 and cp <= 0x2A6DF) or
          (cp >= 0x2A700 and cp <= 0x2B73F) or
          (cp >= 0x2B740 and cp <= 0x2B81F) or
          (cp >= 0x2B820 and cp <= 0x2CEAF) or
          (cp >= 0xF900 and cp <= 0xFAFF) or
          (cp >= 0x2F800 and cp <= 0x2FA1F))


def _is_whitespace(char):
  """Checks whether `char` is whitespace: " ", \\t, \\n, \\r or category Zs."""
  if char == " " or char == "\t" or char == "\n" or char == "\r":
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char):
  """Checks whether `char` is a control character (Cc or Cf but \\t \\n \\r)."""
  if char == "\t" or char == "\n" or char == "\r":
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  """Checks whether `char` is punctuation: non-alphanumeric ASCII, or P*.

  "^", "$", "`" and the like are not in the Unicode P* categories but are
  punctuation here, for consistency.
  """
  cp = ord(char)
  if ((cp >= 33 and cp <= 47) or (cp >= 58 and cp <= 64) or
      (cp >= 91 and cp <= 96) or (cp >= 123 and cp <= 126)):
    return True
  return unicodedata.category(char).startswith("P")
