"""ALBERT's SQuAD features: SentencePiece pieces aligned to the context.

google-research/albert's `squad_utils.convert_examples_to_features`, for
SQuAD v1.1 and v2.0:

- The question is `preprocess_text`-ed (lower cased with `do_lower_case`) and
  encoded into at most `max_query_length` piece ids; so is the context, into
  pieces.
- The pieces, joined with "\u2581" read as a space, are aligned to the
  original context by a longest-common-subsequence over characters
  (`align_characters`, each original character normalized as
  `preprocess_text` does, searched in a diagonal band that is widened once
  if less than 80% of the context matched). A context that still does not
  align is skipped ("MISMATCH DETECTED"), without features.
- Every piece gets the original character offsets of its first and last
  character (`convert_index` fills characters left unaligned); a training
  answer's characters give its start and end pieces.
- The pieces are cut into the same `doc_stride` windows as BERT's
  (`squad.doc_spans_of`, `squad.check_is_max_context`):
  `[CLS] question [SEP] window [SEP]`, with `p_mask` 1 where no answer can
  be (question, the two [SEP], padding). A training window that misses the
  answer, or an impossible question's window, has positions 0 and
  `is_impossible` set.

Features are `squad.InputFeatures` whose `tokens` are the model's pieces of
the ids (`IdToPiece`, padding included), whose `token_to_orig_map` maps a
window token to the character offset where its piece starts in
`paragraph_text`, and `token_to_orig_end_map` to where it ends;
`answer_text` cuts a predicted span out of the context with them.
`squad.FeatureWriter` writes them (with `p_mask`, as ALBERT's writer).
"""

from absl import logging

from bert_tf import tokenization
from bert_tf.data import squad

# Index of an unaligned character in `align_characters`' maps.
UNALIGNED = None


class SentencePieceFeatures(squad.InputFeatures):
  """One window of ALBERT's features (see the module docstring).

  Attributes, besides `squad.InputFeatures`':
    token_to_orig_end_map: dict token index -> offset of the last character
      of the token's piece in the context, for the window's tokens.
    paragraph_len: number of tokens before padding (ALBERT's name).
  """

  def __init__(self, token_to_orig_end_map, paragraph_len, **kwargs):
    """Makes the feature.

    Args:
      token_to_orig_end_map: see the class docstring.
      paragraph_len: see the class docstring.
      **kwargs: the `squad.InputFeatures` arguments.
    """
    super().__init__(**kwargs)
    self.token_to_orig_end_map = token_to_orig_end_map
    self.paragraph_len = paragraph_len

  @property
  def tok_start_to_orig_index(self):
    """ALBERT's list: start character of each window token, in order."""
    return [self.token_to_orig_map[i] for i in sorted(self.token_to_orig_map)]

  @property
  def tok_end_to_orig_index(self):
    """ALBERT's list: end character of each window token, in order."""
    return [self.token_to_orig_end_map[i]
            for i in sorted(self.token_to_orig_end_map)]


def read_squad_examples(input_file, is_training, version_2_with_negative=False):
  """ALBERT's reader: `squad.read_squad_examples`, keeping every answer.

  Args:
    input_file: path of a SQuAD v1.1 or v2.0 JSON file.
    is_training: read the answers.
    version_2_with_negative: read `is_impossible` (training, v2.0).

  Returns:
    list of `squad.SquadExample` with `paragraph_text` and `start_char`.
  """
  return squad.read_squad_examples(
      input_file, is_training, version_2_with_negative,
      skip_unrecoverable_answers=False)


def _lcs_band(orig_chars, piece_text, max_dist):
  """Longest common subsequence of two strings within a diagonal band.

  Only cells (i, j) with i - max_dist <= j < i + max_dist are computed;
  the others count as 0, as in ALBERT's `_lcs_match`.

  Args:
    orig_chars: list of str, the normalized original characters (n).
    piece_text: str, the pieces' characters (m).
    max_dist: half-width of the band.

  Returns:
    (score, moves): the subsequence length at (n - 1, m - 1), and dict
    (i, j) -> 0 (came from i - 1), 1 (from j - 1) or 2 (characters
    matched), for the cells computed.
  """
  n, m = len(orig_chars), len(piece_text)
  moves = {}
  previous = {}
  for i in range(n):
    current = {}
    for j in range(max(i - max_dist, 0), min(i + max_dist, m)):
      score = 0
      if i > 0:
        moves[(i, j)] = 0
        score = previous.get(j, 0)
      if j > 0 and current.get(j - 1, 0) > score:
        moves[(i, j)] = 1
        score = current[j - 1]
      diagonal = previous.get(j - 1, 0) if i > 0 and j > 0 else 0
      if orig_chars[i] == piece_text[j] and diagonal + 1 > score:
        moves[(i, j)] = 2
        score = diagonal + 1
      current[j] = score
    previous = current
  return (previous.get(m - 1, 0) if n else 0), moves


def align_characters(paragraph_text, piece_text, do_lower_case):
  """Aligns the context's characters with its pieces' characters.

  Args:
    paragraph_text: the original context (n characters).
    piece_text: the pieces joined, "\u2581" as a space (m characters).
    do_lower_case: as the tokenization (each original character is compared
      after `preprocess_text(c, remove_space=False, lower=do_lower_case)`).

  Returns:
    (orig_to_piece_char, piece_char_to_orig): lists of length n and m of the
    aligned index on the other side, `UNALIGNED` (None) where there is none;
    or None when the context does not align (nothing aligned, or less than
    80% of the context).
  """
  n, m = len(paragraph_text), len(piece_text)
  orig_chars = [tokenization.preprocess_text(c, remove_space=False,
                                             lower=do_lower_case)
                for c in paragraph_text]
  max_dist = abs(n - m) + 5
  for _ in range(2):
    score, moves = _lcs_band(orig_chars, piece_text, max_dist)
    if score > 0.8 * n:
      break
    max_dist *= 2

  orig_to_piece_char = [UNALIGNED] * n
  piece_char_to_orig = [UNALIGNED] * m
  i, j = n - 1, m - 1
  while i >= 0 and j >= 0 and (i, j) in moves:
    move = moves[(i, j)]
    if move == 2:
      orig_to_piece_char[i] = j
      piece_char_to_orig[j] = i
      i, j = i - 1, j - 1
    elif move == 1:
      j -= 1
    else:
      i -= 1
  if all(v is UNALIGNED for v in orig_to_piece_char) or score < 0.8 * n:
    return None
  return orig_to_piece_char, piece_char_to_orig


def convert_index(index, pos, size=None, is_start=True):
  """`index[pos]`, or for an unaligned position the nearest sensible index.

  ALBERT's `_convert_index`: between two aligned neighbours a start takes
  the one after the left neighbour's value (if that leaves a gap) and an
  end the one before the right neighbour's; at the edges the first index (0)
  or the last (`size - 1`) fills in.

  Args:
    index: list of int or `UNALIGNED`, with at least one int.
    pos: the position asked about.
    size: length of the target sequence, or None.
    is_start: whether `pos` starts a span (else ends one).

  Returns:
    int.
  """
  if index[pos] is not UNALIGNED:
    return index[pos]
  rear = pos
  while rear < len(index) - 1 and index[rear] is UNALIGNED:
    rear += 1
  front = pos
  while front > 0 and index[front] is UNALIGNED:
    front -= 1
  if index[front] is UNALIGNED:  # nothing aligned before pos
    if index[rear] >= 1:
      return 0 if is_start else index[rear] - 1
    return index[rear]
  if index[rear] is UNALIGNED:  # nothing aligned after pos
    if size is not None and index[front] < size - 1:
      return index[front] + 1 if is_start else size - 1
    return index[front]
  if index[rear] > index[front] + 1:
    return index[front] + 1 if is_start else index[rear] - 1
  return index[rear] if is_start else index[front]


def _piece_spans(paragraph_text, pieces, do_lower_case):
  """Each piece's original character span, and each piece character's piece.

  Args:
    paragraph_text: the original context.
    pieces: its SentencePiece pieces.
    do_lower_case: as the tokenization.

  Returns:
    (starts, ends, piece_char_to_piece, orig_to_piece_char): the original
    offsets of every piece's first and last character, the piece of every
    character of the joined pieces, and `align_characters`' first map; or
    None when the context does not align.
  """
  piece_char_to_piece = []
  piece_char_starts = []
  for i, piece in enumerate(pieces):
    text = piece.replace(tokenization.SPIECE_UNDERLINE, " ")
    piece_char_starts.append(len(piece_char_to_piece))
    piece_char_to_piece.extend([i] * len(text))
  piece_text = "".join(pieces).replace(tokenization.SPIECE_UNDERLINE, " ")
  alignment = align_characters(paragraph_text, piece_text, do_lower_case)
  if alignment is None:
    return None
  orig_to_piece_char, piece_char_to_orig = alignment
  n = len(paragraph_text)
  starts, ends = [], []
  for i, start in enumerate(piece_char_starts):
    # A piece's last character precedes the next piece's first.
    end = (piece_char_starts[i + 1] if i + 1 < len(pieces)
           else len(piece_text)) - 1
    starts.append(convert_index(piece_char_to_orig, start, n, is_start=True))
    ends.append(convert_index(piece_char_to_orig, end, n, is_start=False))
  return starts, ends, piece_char_to_piece, orig_to_piece_char


def convert_examples_to_features(examples, tokenizer, max_seq_length,
                                 doc_stride, max_query_length, is_training,
                                 output_fn, do_lower_case, log_examples=20):
  """ALBERT's SQuAD conversion: windowed `SentencePieceFeatures` to `output_fn`.

  Args:
    examples: list of `squad.SquadExample` with `paragraph_text` (and, when
      training, `start_char`), e.g. from `read_squad_examples`.
    tokenizer: a `FullTokenizer` with a SentencePiece model (`sp_model`).
    max_seq_length: padded length of every feature.
    doc_stride: tokens between window starts.
    max_query_length: question pieces kept.
    is_training: compute answer positions.
    output_fn: called with each feature, in order.
    do_lower_case: lower case question and context (ALBERT's argument).
    log_examples: the features of this many first examples are logged in
      full (ALBERT's: 20).

  Returns:
    The number of features produced.

  Raises:
    ValueError: if the tokenizer has no SentencePiece model or
      `max_seq_length` leaves no room for the document.
  """
  sp_model = getattr(tokenizer, "sp_model", None)
  if sp_model is None:
    raise ValueError("ALBERT's SQuAD features need a SentencePiece tokenizer "
                     "(FullTokenizer with spm_model_file)")
  if max_seq_length <= max_query_length + 3:
    raise ValueError("The max_seq_length (%d) must be greater than "
                     "max_query_length (%d) + 3" %
                     (max_seq_length, max_query_length))
  cls_id = sp_model.PieceToId("[CLS]")
  sep_id = sp_model.PieceToId("[SEP]")
  unique_id = squad.FIRST_UNIQUE_ID
  for example_index, example in enumerate(examples):
    query_ids = tokenization.encode_ids(
        sp_model, tokenization.preprocess_text(example.question_text,
                                               lower=do_lower_case))
    query_ids = query_ids[:max_query_length]
    pieces = tokenization.encode_pieces(
        sp_model, tokenization.preprocess_text(example.paragraph_text,
                                               lower=do_lower_case))
    spans = _piece_spans(example.paragraph_text, pieces, do_lower_case)
    if spans is None:
      logging.info("MISMATCH DETECTED! Question %s skipped: its context does "
                   "not align with its pieces", example.qas_id)
      continue
    piece_starts, piece_ends, piece_char_to_piece, orig_to_piece_char = spans

    tok_start_position = tok_end_position = None
    if is_training and not example.is_impossible:
      end_char = example.start_char + len(example.orig_answer_text) - 1
      tok_start_position = piece_char_to_piece[convert_index(
          orig_to_piece_char, example.start_char, is_start=True)]
      tok_end_position = piece_char_to_piece[convert_index(
          orig_to_piece_char, end_char, is_start=False)]

    doc_ids = [sp_model.PieceToId(piece) for piece in pieces]
    # [CLS], [SEP] and [SEP] take 3 positions.
    doc_spans = squad.doc_spans_of(
        len(doc_ids), max_seq_length - len(query_ids) - 3, doc_stride)
    for doc_span_index, doc_span in enumerate(doc_spans):
      input_ids = [cls_id] + query_ids + [sep_id]
      segment_ids = [0] * len(input_ids)
      p_mask = [0] + [1] * (len(query_ids) + 1)
      token_to_orig_map = {}
      token_to_orig_end_map = {}
      token_is_max_context = {}
      for split_token_index in range(doc_span.start,
                                     doc_span.start + doc_span.length):
        position = len(input_ids)
        token_to_orig_map[position] = piece_starts[split_token_index]
        token_to_orig_end_map[position] = piece_ends[split_token_index]
        token_is_max_context[position] = squad.check_is_max_context(
            doc_spans, doc_span_index, split_token_index)
        input_ids.append(doc_ids[split_token_index])
        segment_ids.append(1)
        p_mask.append(0)
      input_ids.append(sep_id)
      segment_ids.append(1)
      p_mask.append(1)
      paragraph_len = len(input_ids)
      input_mask = [1] * len(input_ids)
      padding = max_seq_length - len(input_ids)
      input_ids += [0] * padding
      input_mask += [0] * padding
      segment_ids += [0] * padding
      p_mask += [1] * padding
      # The pieces of all ids, padding included, as ALBERT's features.
      tokens = [sp_model.IdToPiece(i) for i in input_ids]

      span_is_impossible = example.is_impossible
      start_position = end_position = None
      if is_training:
        doc_end = doc_span.start + doc_span.length - 1
        if (not span_is_impossible and tok_start_position >= doc_span.start
            and tok_end_position <= doc_end):
          doc_offset = len(query_ids) + 2
          start_position = tok_start_position - doc_span.start + doc_offset
          end_position = tok_end_position - doc_span.start + doc_offset
        else:
          # An impossible question, or a window missing the answer.
          span_is_impossible = True
          start_position = end_position = 0

      if example_index < log_examples:
        _log_feature(unique_id, example_index, doc_span_index, tokens,
                     token_to_orig_map, token_to_orig_end_map,
                     token_is_max_context, input_ids, input_mask, segment_ids,
                     start_position, end_position, is_training,
                     span_is_impossible, sp_model)

      output_fn(SentencePieceFeatures(
          unique_id=unique_id, example_index=example_index,
          doc_span_index=doc_span_index, tokens=tokens,
          token_to_orig_map=token_to_orig_map,
          token_to_orig_end_map=token_to_orig_end_map,
          token_is_max_context=token_is_max_context, input_ids=input_ids,
          input_mask=input_mask, segment_ids=segment_ids,
          paragraph_len=paragraph_len, p_mask=p_mask,
          start_position=start_position, end_position=end_position,
          is_impossible=span_is_impossible))
      unique_id += 1
  return unique_id - squad.FIRST_UNIQUE_ID


def _log_feature(unique_id, example_index, doc_span_index, tokens,
                 token_to_orig_map, token_to_orig_end_map,
                 token_is_max_context, input_ids, input_mask, segment_ids,
                 start_position, end_position, is_training, is_impossible,
                 sp_model):
  """Logs one feature as ALBERT does for the first 20 examples."""
  logging.info("*** Example ***")
  logging.info("unique_id: %s", unique_id)
  logging.info("example_index: %s", example_index)
  logging.info("doc_span_index: %s", doc_span_index)
  logging.info("tok_start_to_orig_index: %s", " ".join(
      str(v) for v in token_to_orig_map.values()))
  logging.info("tok_end_to_orig_index: %s", " ".join(
      str(v) for v in token_to_orig_end_map.values()))
  logging.info("token_is_max_context: %s", " ".join(
      "%d:%s" % item for item in token_is_max_context.items()))
  logging.info("input_pieces: %s", " ".join(tokens))
  squad.log_ids_and_answer(
      input_ids, input_mask, segment_ids, is_training, is_impossible,
      start_position, end_position,
      lambda: sp_model.DecodePieces(tokens[start_position:end_position + 1]),
      impossible_message="impossible example span")


def answer_text(example, feature, start_index, end_index):
  """The context's text of a predicted span, as ALBERT's predictions.

  Args:
    example: the `squad.SquadExample`.
    feature: its `SentencePieceFeatures` window.
    start_index, end_index: token indexes of the span in the window's
      document part.

  Returns:
    `paragraph_text` from the start piece's first character to the end
    piece's last, stripped of surrounding whitespace.
  """
  start = feature.token_to_orig_map[start_index]
  end = feature.token_to_orig_end_map[end_index]
  return example.paragraph_text[start:end + 1].strip()
