"""Sentence tasks: the segments and the label of an instance.

A `SentenceTask` turns a chunk of consecutive sentences of a document into
the segments of one instance and its label. `nsp` is the original next
sentence prediction, `sop` ALBERT's sentence order; a task with
`num_segments = 1` (`none`, SpanBERT's single segment) returns no `tokens_b`
and the instance becomes `[CLS] A [SEP]`; `none` has no label either.
`SENTENCE_TASKS` maps the `--sentence_task` values to them.
"""

import itertools


class SentenceTask(object):
  """Makes the segments of one instance from a chunk of sentences.

  `create_instances_from_document` gathers consecutive sentences of a
  document into a chunk of about `target_seq_length` tokens and asks the task
  for the segments and the label.
  """

  name = None
  num_segments = 2

  def num_special_tokens(self):
    """Returns the number of `[CLS]`/`[SEP]` tokens an instance holds."""
    return 1 + self.num_segments

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    """Splits a chunk into the instance's segments.

    Args:
      chunk: list of sentences (lists of tokens), consecutive in the document.
      all_documents: list of documents (lists of sentences), for tasks that
        draw from another document.
      document_index: index of the chunk's document in `all_documents`.
      target_seq_length: the token budget of the instance.
      rng: a `random.Random`.

    Returns:
      (tokens_a, tokens_b, label, num_unused): new token lists (`tokens_b` is
      None for one-segment tasks), the bool label (None for a task without
      one), and how many sentences at the end of the chunk were not used
      (they start the next chunk).
    """
    raise NotImplementedError


def _split_point(chunk, rng):
  """Returns how many sentences of `chunk` go into segment A (original)."""
  if len(chunk) >= 2:
    return rng.randint(1, len(chunk) - 1)
  return 1


def _concat(sentences):
  return list(itertools.chain.from_iterable(sentences))


def _random_segment(all_documents, document_index, target_b_length, rng):
  """Draws segment B from another document, as the original random next.

  Tries (10 times) to draw a document other than this one, then takes its
  sentences from a random start until `target_b_length` tokens.

  Returns:
    A new list of tokens.
  """
  for _ in range(10):
    random_document_index = rng.randint(0, len(all_documents) - 1)
    if random_document_index != document_index:
      break
  random_document = all_documents[random_document_index]
  random_start = rng.randint(0, len(random_document) - 1)
  tokens_b = []
  for sentence in random_document[random_start:]:
    tokens_b.extend(sentence)
    if len(tokens_b) >= target_b_length:
      break
  return tokens_b


class NextSentencePrediction(SentenceTask):
  """The original NSP: B follows A (label 0) or comes from another document.

  With probability 0.5 (always for a one-sentence chunk) B is drawn from
  another document (label 1).
  """

  name = "nsp"

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    a_end = _split_point(chunk, rng)
    tokens_a = _concat(chunk[:a_end])
    if len(chunk) == 1 or rng.random() < 0.5:
      tokens_b = _random_segment(all_documents, document_index,
                                 target_seq_length - len(tokens_a), rng)
      # The sentences after A were not used: they start the next chunk.
      return tokens_a, tokens_b, True, len(chunk) - a_end
    return tokens_a, _concat(chunk[a_end:]), False, 0


class SentenceOrderPrediction(SentenceTask):
  """ALBERT's sentence order prediction (`--random_next_sentence=False`).

  A and B are consecutive parts of the chunk; with probability 0.5 they are
  swapped (label 1 = swapped, stored as `next_sentence_labels`). A chunk of
  one sentence has no second part: as in the original, B is then drawn from
  another document as in NSP, with label 1. The draws are the original's:
  the split point, then either the random document or one `rng.random()`.
  (ALBERT's `--random_next_sentence=True` is `nsp`, draw for draw.)
  """

  name = "sop"

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    a_end = _split_point(chunk, rng)
    tokens_a = _concat(chunk[:a_end])
    if len(chunk) == 1:
      tokens_b = _random_segment(all_documents, document_index,
                                 target_seq_length - len(tokens_a), rng)
      return tokens_a, tokens_b, True, 0
    tokens_b = _concat(chunk[a_end:])
    if rng.random() < 0.5:
      return tokens_b, tokens_a, True, 0
    return tokens_a, tokens_b, False, 0


SENTENCE_TASKS = {cls.name: cls for cls in (NextSentencePrediction,
                                            SentenceOrderPrediction)}


class NoSentenceTask(SentenceTask):
  """SpanBERT's single segment: the whole chunk, `[CLS] A [SEP]`, no label.

  Its instances carry no `next_sentence_labels` feature, so run_pretraining
  trains no next sentence head on them.
  """

  name = "none"
  num_segments = 1

  def make_segments(self, chunk, all_documents, document_index,
                    target_seq_length, rng):
    return _concat(chunk), None, None, 0


SENTENCE_TASKS[NoSentenceTask.name] = NoSentenceTask
