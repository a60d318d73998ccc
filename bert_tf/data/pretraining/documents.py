"""Reading text into documents of tokens (one sentence a line).

`read_documents` reads the original input format (one sentence a line,
blank lines between documents) and tokenizes it in batches of lines with a
line tokenizer from `make_line_tokenizer`: the original `FullTokenizer`,
line by line or through `PieceCachingTokenizer` (each distinct word once,
same tokens), or the in-graph fast tokenizers of `bert_tf.text`.
"""

import tensorflow as tf

from bert_tf import tokenization


def _document_lines(input_files, part, num_parts, is_blank):
  """Yields (number, stripped lines) of each document of `part` (see below)."""
  document_number = 0
  lines = []
  for input_file in input_files:
    try:
      with tf.io.gfile.GFile(input_file, "r") as reader:
        for line in reader:
          line = line.strip()
          if not is_blank(line):
            lines.append(line)
          elif lines:
            if document_number % num_parts == part:
              yield document_number, lines
            document_number += 1
            lines = []
    except UnicodeDecodeError as e:
      raise ValueError("input file %s is not UTF-8 text: %s" %
                       (input_file, e)) from e
  if lines and document_number % num_parts == part:
    yield document_number, lines


def is_blank_after_preprocessing(line):
  """Whether ALBERT's `preprocess_text` empties a stripped `line`.

  ALBERT reads SentencePiece input through `preprocess_text`, so a line of
  nothing but combining characters separates documents as a blank one does.
  """
  return not line or (not line.isascii() and
                      not tokenization.preprocess_text(line))


def read_documents(input_files, tokenize_lines, part=0, num_parts=1,
                   progress=None, batch_lines=1024, is_blank=None,
                   numbered=False):
  """Reads documents (one sentence a line, blank lines between documents).

  As in the original, a document that is not closed by a blank line goes on
  in the next file, every non-blank (stripped) line is tokenized, lines with
  no token are dropped and so are documents with no sentence.

  Args:
    input_files: list of text files (UTF-8; any path `tf.io.gfile` reads).
    tokenize_lines: function from a list of str to a list of token lists.
    part: keep the documents whose number (in reading order, counting those
      with a non-blank line) % `num_parts` is `part`; the others are skipped
      without tokenization.
    num_parts: number of parts the documents are dealt into.
    progress: optional `Progress`, told of every batch of documents read.
    batch_lines: lines handed to `tokenize_lines` at once (at least; whole
      documents are kept together).
    is_blank: function of a stripped line, True for a document separator;
      default: the empty line (BERT). SentencePiece input (ALBERT) uses
      `is_blank_after_preprocessing`.
    numbered: return each document with its number (as in `part`), which
      names it independently of `part` and `num_parts` (the Beam pipeline
      seeds its draws with it).

  Returns:
    A list of documents, each a list of sentences (lists of token strings);
    with `numbered`, a list of (number, document).

  Raises:
    ValueError: if a file is not UTF-8.
  """
  documents = []
  batch = []  # (number, lines) of whole documents, not tokenized yet.

  def tokenize_batch():
    batch_tokens = iter(tokenize_lines([line for _, lines in batch
                                        for line in lines]))
    for number, lines in batch:
      document = [tokens for tokens in (next(batch_tokens) for _ in lines)
                  if tokens]
      if document:
        documents.append((number, document) if numbered else document)
    if progress:
      progress.add(documents=len(batch))
    batch.clear()

  num_lines = 0
  for number, lines in _document_lines(input_files, part, num_parts,
                                       is_blank or (lambda line: not line)):
    batch.append((number, lines))
    num_lines += len(lines)
    if num_lines >= batch_lines:
      tokenize_batch()
      num_lines = 0
  if batch:
    tokenize_batch()
  return documents


def resolve_input_files(input_file):
  """Expands the `--input_file` comma list of files and glob patterns.

  Args:
    input_file: comma-separated paths or glob patterns.

  Returns:
    The list of files, pattern by pattern in `tf.io.gfile.glob` order.

  Raises:
    ValueError: if a pattern matches nothing or a file is empty.
  """
  input_files = []
  for pattern in (input_file or "").split(","):
    matches = tf.io.gfile.glob(pattern) if pattern else []
    if not matches:
      raise ValueError("--input_file pattern %r matches no file" % pattern)
    input_files.extend(matches)
  for path in input_files:
    if tf.io.gfile.stat(path).length == 0:
      raise ValueError("input file %s is empty: expected text, one sentence "
                       "a line, blank lines between documents" % path)
  return input_files


class PieceCachingTokenizer(object):
  """Tokenizes lines, each distinct space-separated piece only once.

  `FullTokenizer.tokenize(line)` is the concatenation of `tokenize(piece)`
  over `line.split(" ")`: an ASCII space always separates words and every step
  of the original tokenizer works on single characters or on whitespace-
  separated words. So the pieces' tokens are cached and reused, with
  identical output. The cache is emptied when it would exceed `cache_size`.
  """

  def __init__(self, tokenize_pieces, cache_size):
    """Wraps a tokenizer of pieces.

    Args:
      tokenize_pieces: function from a list of str to a list of token lists.
      cache_size: the most pieces remembered (at least 1).
    """
    self._tokenize_pieces = tokenize_pieces
    self.cache_size = cache_size
    self._cache = {}

  def __call__(self, lines):
    """Returns the list of token lists of `lines` (a list of str)."""
    cache = self._cache
    pieces_per_line = [line.split(" ") for line in lines]
    new = {p for pieces in pieces_per_line for p in pieces if p not in cache}
    if len(cache) + len(new) > self.cache_size:
      cache.clear()
      new = {p for pieces in pieces_per_line for p in pieces}
    new = list(new)
    cache.update(zip(new, self._tokenize_pieces(new)))
    return [[token for piece in pieces for token in cache[piece]]
            for pieces in pieces_per_line]


def _ids_of(token_lists, tokenizer):
  """Returns the ids of the tokens of each list (`tokenizer.vocab`)."""
  vocab = tokenizer.vocab
  return [[vocab[token] for token in tokens] for tokens in token_lists]


def make_line_tokenizer(tokenizer, options, as_ids=False):
  """Returns a function from a list of lines to a list of token lists.

  Args:
    tokenizer: the `FullTokenizer` of `options.vocab_file`.
    options: `RunOptions`. With `fast_tokenizer` the text goes through the
      in-graph `FastBertTokenizer` in batches, whose ids are mapped back to
      tokens. With `tokenizer_cache_size > 0` each distinct space-separated
      piece is tokenized once (`PieceCachingTokenizer`); 0 tokenizes line by
      line as the original. The tokens are the same in every case.
    as_ids: give each token's id (`tokenizer.vocab`) instead of the token;
      the fast tokenizers' ids are kept as they come.

  Returns:
    The function.
  """
  if options.fast_tokenizer:
    # Imported when asked for: loading tensorflow_text's ops takes time.
    from bert_tf import text  # pylint: disable=g-import-not-at-top
    if options.spm_model_file:
      fast = text.FastSentencePieceTokenizer(options.spm_model_file,
                                             options.do_lower_case)

      def tokenize_texts(texts):
        if not texts:
          return []
        # The pieces themselves: an unknown one keeps its text, as in
        # `FullTokenizer.tokenize` (it counts for whole-word boundaries).
        pieces = fast.tokenize_pieces(tf.constant(texts)).to_list()
        pieces = [[p.decode("utf-8") for p in text_pieces]
                  for text_pieces in pieces]
        return _ids_of(pieces, tokenizer) if as_ids else pieces
    else:
      fast = text.FastBertTokenizer(options.vocab_file, options.do_lower_case)
      inv_vocab = tokenizer.inv_vocab

      def tokenize_texts(texts):
        if not texts:
          return []
        # Eager ops: a few large batches do not repay tracing `tokenize`.
        ids = fast.tokenize_ops(tf.constant(texts)).to_list()  # [batch, (tokens)]
        if as_ids:
          return ids
        return [[inv_vocab[i] for i in text_ids] for text_ids in ids]
  else:

    def tokenize_texts(texts):
      tokens = [tokenizer.tokenize(t) for t in texts]
      return _ids_of(tokens, tokenizer) if as_ids else tokens

  if options.tokenizer_cache_size > 0 and (
      tokenizer.sp_model is None or
      _splits_on_spaces(tokenizer.sp_model)):
    return PieceCachingTokenizer(tokenize_texts, options.tokenizer_cache_size)
  return tokenize_texts


# The fields of SentencePiece's `ModelProto` (sentencepiece_model.proto) that
# `_splits_on_spaces` reads, as (message, field, number, proto2 default; a
# message field has its type's name instead).
_MODEL_PROTO_FIELDS = (
    ("ModelProto", "trainer_spec", 2, "TrainerSpec"),
    ("ModelProto", "normalizer_spec", 3, "NormalizerSpec"),
    ("TrainerSpec", "split_by_whitespace", 22, "true"),
    ("TrainerSpec", "treat_whitespace_as_suffix", 24, "false"),
    ("NormalizerSpec", "add_dummy_prefix", 3, "true"),
    ("NormalizerSpec", "remove_extra_whitespaces", 4, "true"),
)
_MODEL_PROTO_PACKAGE = "bert_tf.sentencepiece_model_fields"


def _model_proto_class():
  """Returns a message class that parses the fields of `_MODEL_PROTO_FIELDS`.

  Built from a descriptor at run time rather than imported from
  `sentencepiece.sentencepiece_model_pb2`, whose generated code requires the
  protobuf runtime it was generated with (sentencepiece 0.2.3: 7.36), which
  Apache Beam's pin (protobuf < 7) excludes; the other fields of a model are
  skipped as unknown.
  """
  from google.protobuf import descriptor_pb2  # pylint: disable=g-import-not-at-top
  from google.protobuf import descriptor_pool  # pylint: disable=g-import-not-at-top
  from google.protobuf import message_factory  # pylint: disable=g-import-not-at-top
  field_type = descriptor_pb2.FieldDescriptorProto
  file_proto = descriptor_pb2.FileDescriptorProto(
      name=_MODEL_PROTO_PACKAGE.replace(".", "/") + ".proto",
      package=_MODEL_PROTO_PACKAGE, syntax="proto2")
  messages = {}
  for message, name, number, default in _MODEL_PROTO_FIELDS:
    if message not in messages:
      messages[message] = file_proto.message_type.add(name=message)
    field = messages[message].field.add(
        name=name, number=number, label=field_type.LABEL_OPTIONAL)
    if default in ("true", "false"):
      field.type, field.default_value = field_type.TYPE_BOOL, default
    else:
      field.type = field_type.TYPE_MESSAGE
      field.type_name = ".%s.%s" % (_MODEL_PROTO_PACKAGE, default)
  pool = descriptor_pool.DescriptorPool()
  pool.Add(file_proto)
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName(_MODEL_PROTO_PACKAGE + ".ModelProto"))


def _splits_on_spaces(sp_model):
  """Whether a SentencePiece model tokenizes space-separated words alone.

  True for the default normalization (a dummy "\u2581" in front, extra
  whitespace removed) and pre-splitting on whitespace, as ALBERT's models:
  then the pieces of a line are those of its words, and the cache holds.
  """
  proto = _model_proto_class().FromString(sp_model.serialized_model_proto())
  return (proto.normalizer_spec.add_dummy_prefix and
          proto.normalizer_spec.remove_extra_whitespaces and
          proto.trainer_spec.split_by_whitespace and
          not proto.trainer_spec.treat_whitespace_as_suffix)
