"""SQuAD v1.1 / v2.0 examples and windowed features, as the original run_squad.

- `read_squad_examples` reads the official JSON: contexts split on
  whitespace into `doc_tokens`, answers mapped from characters to words.
  Missing required fields are errors naming the question id; a training answer
  whose text cannot be found at its offset is a warning and the question is
  skipped, as in the original.
- `convert_examples_to_features` tokenizes the question (at most
  `max_query_length` tokens) and slides windows of the document with
  `doc_stride`: `[CLS] question [SEP] window [SEP]`, each document token
  marked as being in its "max context" window or not. Training answers become
  token positions in each window, or 0 ([CLS]) when the window misses the
  answer or the question is impossible.
- `FeatureWriter` writes the original TFRecords and `squad_dataset` reads them.

ALBERT's SentencePiece features (`squad_sentencepiece`) reuse the examples
(with their `paragraph_text` and character offsets), the windows and the
writer.
"""

import collections
import dataclasses
import json
from typing import Optional

from absl import logging
import tensorflow as tf

from bert_tf import file_io
from bert_tf import tokenization
from bert_tf.data import finetuning_dataset
from bert_tf.data import record_format

# Unique ids of features start here, as the original.
FIRST_UNIQUE_ID = 1000000000


@dataclasses.dataclass(eq=False)
class SquadExample:
  """One question on one context; answers as word positions in `doc_tokens`.

  Attributes:
    qas_id: the question id.
    question_text: the question.
    doc_tokens: the context split on whitespace.
    orig_answer_text: the (first) answer text when training, "" when
      impossible, else None.
    start_position, end_position: word indexes of the answer in `doc_tokens`
      when training (-1 when impossible), else None.
    is_impossible: whether the question has no answer (v2.0).
    paragraph_text: the context as given (ALBERT's features align to it).
    start_char: character offset of the answer in `paragraph_text` (its
      `answer_start`) when training, -1 when impossible, else None.
  """

  qas_id: str
  question_text: str
  doc_tokens: list
  orig_answer_text: Optional[str] = None
  start_position: Optional[int] = None
  end_position: Optional[int] = None
  is_impossible: bool = False
  paragraph_text: Optional[str] = None
  start_char: Optional[int] = None

  def __repr__(self):
    return ("SquadExample(qas_id=%r, question_text=%r, start_position=%r, "
            "end_position=%r, is_impossible=%r)" %
            (self.qas_id, self.question_text, self.start_position,
             self.end_position, self.is_impossible))


@dataclasses.dataclass(eq=False)
class InputFeatures:
  """One window of one example.

  Attributes:
    unique_id: id of the feature (from `FIRST_UNIQUE_ID`, in order).
    example_index: index of its example in the list given.
    doc_span_index: index of the window within the example.
    tokens: `[CLS] question [SEP] window [SEP]` WordPiece tokens.
    token_to_orig_map: dict token index -> word index in `doc_tokens`, for
      the window's tokens.
    token_is_max_context: dict token index -> whether this window is the
      token's max-context window.
    input_ids, input_mask, segment_ids: padded to `max_seq_length`.
    start_position, end_position: answer token indexes (training), else None.
    is_impossible: the example's flag (ALBERT's features: also set for a
      training window that misses the answer).
    p_mask: ALBERT's features only: 1 for the positions that cannot be in an
      answer (question, [SEP], padding), 0 for [CLS] and the window; None.
  """

  unique_id: int
  example_index: int
  doc_span_index: int
  tokens: list
  token_to_orig_map: dict
  token_is_max_context: dict
  input_ids: list
  input_mask: list
  segment_ids: list
  start_position: Optional[int] = None
  end_position: Optional[int] = None
  is_impossible: Optional[bool] = None
  p_mask: Optional[list] = None


DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


def _is_whitespace(c):
  return c in (" ", "\t", "\r", "\n") or ord(c) == 0x202F


def _split_context(paragraph_text):
  """Splits a context on whitespace.

  Args:
    paragraph_text: the context string.

  Returns:
    (doc_tokens, char_to_word_offset): the words, and for every character the
    index of the word it belongs to (of the previous word for whitespace).
  """
  doc_tokens = []
  char_to_word_offset = []
  prev_is_whitespace = True
  for c in paragraph_text:
    if _is_whitespace(c):
      prev_is_whitespace = True
    else:
      if prev_is_whitespace:
        doc_tokens.append(c)
      else:
        doc_tokens[-1] += c
      prev_is_whitespace = False
    char_to_word_offset.append(len(doc_tokens) - 1)
  return doc_tokens, char_to_word_offset


def _field(obj, key, where, expected_type=None):
  """obj[key], or a ValueError naming `where` and the missing key."""
  if not isinstance(obj, dict) or key not in obj:
    raise ValueError("%s: missing required field %r" % (where, key))
  value = obj[key]
  if expected_type is not None and not isinstance(value, expected_type):
    raise ValueError("%s: field %r should be %s, found %r" %
                     (where, key, expected_type.__name__, value))
  return value


def read_squad_data(input_file):
  """Loads the `data` list of a SQuAD JSON file.

  Args:
    input_file: path of the JSON file.

  Returns:
    The list of articles.

  Raises:
    ValueError: if the file is missing, is not JSON or has no `data` list.
  """
  if not tf.io.gfile.exists(input_file):
    raise ValueError("SQuAD file not found: %s" % input_file)
  with tf.io.gfile.GFile(input_file, "r") as reader:
    try:
      dataset = json.load(reader)
    except ValueError as e:
      raise ValueError("%s is not valid JSON: %s" % (input_file, e))
  return _field(dataset, "data", input_file, list)


def read_squad_examples(input_file, is_training, version_2_with_negative=False,
                        skip_unrecoverable_answers=True):
  """Reads a SQuAD JSON file into a list of `SquadExample`.

  Args:
    input_file: path of a SQuAD v1.1 or v2.0 JSON file.
    is_training: read the answers (exactly one per answerable question).
    version_2_with_negative: read `is_impossible` (training, v2.0).
    skip_unrecoverable_answers: leave out the training questions whose answer
      text is not found in the words at its offset (the original run_squad);
      ALBERT's reader keeps them (False).

  Returns:
    list of `SquadExample`, in file order, without the training questions
    whose answer cannot be recovered from the context (unless asked).

  Raises:
    ValueError: for a missing required field (naming the question id, or the
      article/paragraph when the id itself is missing) or a training question
      without exactly one answer.
  """
  examples = []
  for a, entry in enumerate(read_squad_data(input_file)):
    where = "%s: article %d" % (input_file, a)
    for p, paragraph in enumerate(_field(entry, "paragraphs", where, list)):
      where = "%s: article %d, paragraph %d" % (input_file, a, p)
      paragraph_text = _field(paragraph, "context", where, str)
      doc_tokens, char_to_word_offset = _split_context(paragraph_text)
      for q, qa in enumerate(_field(paragraph, "qas", where, list)):
        qas_id = _field(qa, "id", "%s, question %d" % (where, q))
        where_q = "%s: question id %s" % (input_file, qas_id)
        question_text = _field(qa, "question", where_q, str)
        start_position = None
        end_position = None
        orig_answer_text = None
        start_char = None
        is_impossible = False
        if is_training:
          if version_2_with_negative:
            is_impossible = _field(qa, "is_impossible", where_q, bool)
          answers = _field(qa, "answers", where_q, list)
          if len(answers) != 1 and not is_impossible:
            raise ValueError(
                "%s: for training, each question should have exactly 1 "
                "answer, found %d" % (where_q, len(answers)))
          if not is_impossible:
            answer = answers[0]
            orig_answer_text = _field(answer, "text", where_q + ", answer",
                                      str)
            answer_offset = _field(answer, "answer_start",
                                   where_q + ", answer", int)
            answer_length = len(orig_answer_text)
            if not (0 <= answer_offset and answer_offset + answer_length <=
                    len(paragraph_text) and answer_length > 0):
              raise ValueError(
                  "%s: answer_start %d with text %r lies outside its context "
                  "of %d characters" % (where_q, answer_offset,
                                        orig_answer_text, len(paragraph_text)))
            start_char = answer_offset
            start_position = char_to_word_offset[answer_offset]
            end_position = char_to_word_offset[answer_offset + answer_length -
                                               1]
            # Keep only answers whose text can be recovered from the words.
            actual_text = " ".join(doc_tokens[start_position:end_position + 1])
            cleaned_answer_text = " ".join(
                tokenization.whitespace_tokenize(orig_answer_text))
            if (skip_unrecoverable_answers and
                actual_text.find(cleaned_answer_text) == -1):
              logging.warning("Could not find answer of question %s: '%s' "
                              "vs. '%s'", qas_id, actual_text,
                              cleaned_answer_text)
              continue
          else:
            start_position = -1
            end_position = -1
            start_char = -1
            orig_answer_text = ""
        examples.append(SquadExample(
            qas_id=qas_id, question_text=question_text, doc_tokens=doc_tokens,
            orig_answer_text=orig_answer_text, start_position=start_position,
            end_position=end_position, is_impossible=is_impossible,
            paragraph_text=paragraph_text, start_char=start_char))
  return examples


def improve_answer_span(doc_tokens, input_start, input_end, tokenizer,
                        orig_answer_text):
  """Narrows a word-level answer span to the tokens matching the answer text.

  The answer "1895" of the word "(1895-1943)." becomes the token "1895" of
  "( 1895 - 1943 ) .": the first (start, longest) sub-span whose tokens join
  to the tokenized answer.

  Args:
    doc_tokens: WordPiece tokens of the document.
    input_start, input_end: token span of the answer's words.
    tokenizer: the `FullTokenizer`.
    orig_answer_text: the annotated answer text.

  Returns:
    (start, end) token indexes, the input span when no sub-span matches.
  """
  tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
  for new_start in range(input_start, input_end + 1):
    for new_end in range(input_end, new_start - 1, -1):
      if " ".join(doc_tokens[new_start:new_end + 1]) == tok_answer_text:
        return new_start, new_end
  return input_start, input_end


def check_is_max_context(doc_spans, cur_span_index, position):
  """Whether window `cur_span_index` gives token `position` its most context.

  A token's context in a window is min(left tokens, right tokens) + 0.01 *
  the window length; the first window with the highest score wins.

  Args:
    doc_spans: list of `DocSpan`.
    cur_span_index: index of the window asked about.
    position: token index in the document.

  Returns:
    bool.
  """
  best_score = None
  best_span_index = None
  for span_index, doc_span in enumerate(doc_spans):
    end = doc_span.start + doc_span.length - 1
    if position < doc_span.start or position > end:
      continue
    num_left_context = position - doc_span.start
    num_right_context = end - position
    score = min(num_left_context, num_right_context) + 0.01 * doc_span.length
    if best_score is None or score > best_score:
      best_score = score
      best_span_index = span_index
  return cur_span_index == best_span_index


def doc_spans_of(num_tokens, max_tokens_for_doc, doc_stride):
  """The sliding windows over a document of `num_tokens` tokens.

  Args:
    num_tokens: document length in tokens.
    max_tokens_for_doc: the most tokens a window holds.
    doc_stride: the most tokens between two window starts.

  Returns:
    list of `DocSpan`; the last one ends at the document's end.
  """
  doc_spans = []
  start_offset = 0
  while start_offset < num_tokens:
    length = min(num_tokens - start_offset, max_tokens_for_doc)
    doc_spans.append(DocSpan(start=start_offset, length=length))
    if start_offset + length == num_tokens:
      break
    start_offset += min(length, doc_stride)
  return doc_spans


def convert_examples_to_features(examples, tokenizer, max_seq_length,
                                 doc_stride, max_query_length, is_training,
                                 output_fn, log_examples=20):
  """Turns examples into windowed `InputFeatures`, passed to `output_fn`.

  Args:
    examples: list of `SquadExample`.
    tokenizer: a `FullTokenizer`.
    max_seq_length: padded length of every feature.
    doc_stride: tokens between window starts.
    max_query_length: question tokens kept.
    is_training: compute answer positions.
    output_fn: called with each `InputFeatures`, in order.
    log_examples: the features of this many first examples are logged in
      full (the original: 20).

  Returns:
    The number of features produced.

  Raises:
    ValueError: if `max_seq_length` leaves no room for the document.
  """
  if max_seq_length <= max_query_length + 3:
    raise ValueError("The max_seq_length (%d) must be greater than "
                     "max_query_length (%d) + 3" %
                     (max_seq_length, max_query_length))
  unique_id = FIRST_UNIQUE_ID
  for example_index, example in enumerate(examples):
    query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]

    tok_to_orig_index = []
    orig_to_tok_index = []
    all_doc_tokens = []
    for i, token in enumerate(example.doc_tokens):
      orig_to_tok_index.append(len(all_doc_tokens))
      for sub_token in tokenizer.tokenize(token):
        tok_to_orig_index.append(i)
        all_doc_tokens.append(sub_token)

    tok_start_position = None
    tok_end_position = None
    if is_training and example.is_impossible:
      tok_start_position = -1
      tok_end_position = -1
    if is_training and not example.is_impossible:
      tok_start_position = orig_to_tok_index[example.start_position]
      if example.end_position < len(example.doc_tokens) - 1:
        tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
      else:
        tok_end_position = len(all_doc_tokens) - 1
      tok_start_position, tok_end_position = improve_answer_span(
          all_doc_tokens, tok_start_position, tok_end_position, tokenizer,
          example.orig_answer_text)

    # [CLS], [SEP] and [SEP] take 3 positions.
    max_tokens_for_doc = max_seq_length - len(query_tokens) - 3
    doc_spans = doc_spans_of(len(all_doc_tokens), max_tokens_for_doc,
                             doc_stride)

    for doc_span_index, doc_span in enumerate(doc_spans):
      tokens = ["[CLS]"] + query_tokens + ["[SEP]"]
      segment_ids = [0] * len(tokens)
      token_to_orig_map = {}
      token_is_max_context = {}
      for i in range(doc_span.length):
        split_token_index = doc_span.start + i
        token_to_orig_map[len(tokens)] = tok_to_orig_index[split_token_index]
        token_is_max_context[len(tokens)] = check_is_max_context(
            doc_spans, doc_span_index, split_token_index)
        tokens.append(all_doc_tokens[split_token_index])
        segment_ids.append(1)
      tokens.append("[SEP]")
      segment_ids.append(1)

      input_ids = tokenizer.convert_tokens_to_ids(tokens)
      input_mask = [1] * len(input_ids)
      padding = [0] * (max_seq_length - len(input_ids))
      input_ids = list(input_ids) + padding
      input_mask += padding
      segment_ids += padding

      start_position = None
      end_position = None
      if is_training and not example.is_impossible:
        doc_start = doc_span.start
        doc_end = doc_span.start + doc_span.length - 1
        if (tok_start_position >= doc_start and tok_end_position <= doc_end):
          doc_offset = len(query_tokens) + 2
          start_position = tok_start_position - doc_start + doc_offset
          end_position = tok_end_position - doc_start + doc_offset
        else:
          # The window misses the answer: predict [CLS].
          start_position = 0
          end_position = 0
      if is_training and example.is_impossible:
        start_position = 0
        end_position = 0

      if example_index < log_examples:
        _log_feature(unique_id, example_index, doc_span_index, tokens,
                     token_to_orig_map, token_is_max_context, input_ids,
                     input_mask, segment_ids, start_position, end_position,
                     is_training, example.is_impossible)

      output_fn(InputFeatures(
          unique_id=unique_id, example_index=example_index,
          doc_span_index=doc_span_index, tokens=tokens,
          token_to_orig_map=token_to_orig_map,
          token_is_max_context=token_is_max_context, input_ids=input_ids,
          input_mask=input_mask, segment_ids=segment_ids,
          start_position=start_position, end_position=end_position,
          is_impossible=example.is_impossible))
      unique_id += 1
  return unique_id - FIRST_UNIQUE_ID


def _log_feature(unique_id, example_index, doc_span_index, tokens,
                 token_to_orig_map, token_is_max_context, input_ids,
                 input_mask, segment_ids, start_position, end_position,
                 is_training, is_impossible):
  """Logs one feature as the original does for the first 20 examples."""
  logging.info("*** Example ***")
  logging.info("unique_id: %s", unique_id)
  logging.info("example_index: %s", example_index)
  logging.info("doc_span_index: %s", doc_span_index)
  logging.info("tokens: %s", " ".join(
      tokenization.printable_text(x) for x in tokens))
  logging.info("token_to_orig_map: %s", " ".join(
      "%d:%d" % item for item in token_to_orig_map.items()))
  logging.info("token_is_max_context: %s", " ".join(
      "%d:%s" % item for item in token_is_max_context.items()))
  log_ids_and_answer(
      input_ids, input_mask, segment_ids, is_training, is_impossible,
      start_position, end_position,
      lambda: " ".join(tokens[start_position:end_position + 1]))


def log_ids_and_answer(input_ids, input_mask, segment_ids, is_training,
                       is_impossible, start_position, end_position, answer_fn,
                       impossible_message="impossible example"):
  """Logs a feature's ids and, when training, its answer (or impossibility).

  Args:
    input_ids, input_mask, segment_ids: the feature's lists.
    is_training: whether positions exist.
    is_impossible: the feature's flag.
    start_position, end_position: the answer's token positions.
    answer_fn: () -> the answer's text, called for a possible answer.
    impossible_message: what to log for an impossible one.
  """
  logging.info("input_ids: %s", " ".join(str(x) for x in input_ids))
  logging.info("input_mask: %s", " ".join(str(x) for x in input_mask))
  logging.info("segment_ids: %s", " ".join(str(x) for x in segment_ids))
  if is_training and is_impossible:
    logging.info(impossible_message)
  if is_training and not is_impossible:
    logging.info("start_position: %d", start_position)
    logging.info("end_position: %d", end_position)
    logging.info("answer: %s", tokenization.printable_text(answer_fn()))


class FeatureWriter(object):
  """Writes `InputFeatures` to the original SQuAD TFRecord format.

  The file is written under its temporary name (`file_io.temporary_path`)
  and appears under `filename` when `close()` commits it.
  """

  def __init__(self, filename, is_training):
    """Opens the temporary file.

    Args:
      filename: TFRecord path.
      is_training: also write `start_positions`, `end_positions` and
        `is_impossible`.
    """
    self.filename = filename
    self.is_training = is_training
    self.num_features = 0
    self._writer = tf.io.TFRecordWriter(file_io.temporary_path(filename))

  def process_feature(self, feature):
    """Writes one feature as a `tf.train.Example` (with `p_mask` if set)."""
    self.num_features += 1
    int_feature = record_format.create_int_feature
    features = collections.OrderedDict()
    features["unique_ids"] = int_feature([feature.unique_id])
    features["input_ids"] = int_feature(feature.input_ids)
    features["input_mask"] = int_feature(feature.input_mask)
    features["segment_ids"] = int_feature(feature.segment_ids)
    if feature.p_mask is not None:
      features["p_mask"] = int_feature(feature.p_mask)
    if self.is_training:
      features["start_positions"] = int_feature([feature.start_position])
      features["end_positions"] = int_feature([feature.end_position])
      features["is_impossible"] = int_feature(
          [int(bool(feature.is_impossible))])
    self._writer.write(record_format.features_to_example(features))

  def close(self):
    """Closes the file and renames it to `filename`."""
    self._writer.close()
    file_io.commit(self.filename)


def squad_dataset(input_file, seq_length, batch_size, is_training,
                  drop_remainder, input_context=None, seed=None,
                  dynamic_padding=False, answer_verification=False):
  """Reads the SQuAD TFRecords into batches of int32 features.

  Args:
    input_file: TFRecord path.
    seq_length: `max_seq_length` the file was written with.
    batch_size: batch size of this dataset (per replica under a strategy).
    is_training: read the positions; repeat and shuffle (buffer 100).
    drop_remainder: drop a last partial batch.
    input_context: `tf.distribute.InputContext` to shard by input pipeline.
    seed: shuffle seed, or None.
    dynamic_padding: batches of similar lengths cut to their longest
      example (never before a start or end position), with `example_index`
      (see `finetuning_dataset`).
    answer_verification: also read ALBERT's `p_mask` and, for training,
      `is_impossible` (the inputs of ALBERT's v2.0 head, `BertSquadV2`).

  Returns:
    A `tf.data.Dataset` of dicts: `unique_ids` [batch], `input_ids`,
    `input_mask`, `segment_ids` [batch, seq_length] (dynamic padding:
    [batch, <= seq_length]), and for training `start_positions`,
    `end_positions` [batch]; with `answer_verification` `p_mask` (as
    `input_ids`) and for training `is_impossible` [batch].
  """
  name_to_features = {
      "unique_ids": tf.io.FixedLenFeature([], tf.int64),
      "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
  }
  if is_training:
    name_to_features["start_positions"] = tf.io.FixedLenFeature([], tf.int64)
    name_to_features["end_positions"] = tf.io.FixedLenFeature([], tf.int64)
  if answer_verification:
    name_to_features["p_mask"] = tf.io.FixedLenFeature([seq_length], tf.int64)
    if is_training:
      name_to_features["is_impossible"] = tf.io.FixedLenFeature([], tf.int64)

  return finetuning_dataset.finetuning_dataset(
      input_file, name_to_features, batch_size, is_training, drop_remainder,
      input_context, seed, dynamic_padding)
