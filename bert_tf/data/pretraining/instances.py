"""Pretraining instances: documents -> sentence pairs -> masked LM predictions.

The faithful path reproduces the original `create_pretraining_data.py` call
for call on one `random.Random(random_seed)`: the shuffle of the documents,
the dupe loop, `target_seq_length`, the split point, the random-next decision
and the random document, the front/back truncation, the shuffle of the
masking candidates and the 80/10/10 replacement.

`instance_segments` is the original's loop over one document (chunks of
sentences, the sentence task's segments, the truncation); the faithful mode
turns its segments into `TrainingInstance`s one at a time
(`create_instances_from_document`, token strings), the parallel mode into
batches of ids (`batches.InstanceBatcher`). The schemes plug in through
`InstanceOptions`: a `masking.MaskingStrategy` and a
`sentence_tasks.SentenceTask`.
"""

import dataclasses
from typing import Optional

from bert_tf.data.pretraining import masking as masking_lib
from bert_tf.data.pretraining import randomness
from bert_tf.data.pretraining import sentence_tasks


@dataclasses.dataclass(eq=False)
class TrainingInstance:
  """A single training instance (a sentence pair, or one segment).

  Attributes:
    tokens: list of token strings, with `[CLS]`/`[SEP]` and masks applied.
    segment_ids: list of ints (0 for A, 1 for B), same length as `tokens`.
    masked_lm_positions: sorted list of masked positions.
    masked_lm_labels: the original tokens at those positions.
    is_random_next: the sentence task's label (True = 1), or None for a
      task without a label (no `next_sentence_labels` feature is written).
    masked_lm_spans: None, or for each masked position the (first, last)
      positions of the masked span that holds it, for the span boundary
      objective (SpanBERT).
  """

  tokens: list
  segment_ids: list
  masked_lm_positions: list
  masked_lm_labels: list
  is_random_next: Optional[bool]
  masked_lm_spans: Optional[list] = None

  def __str__(self):
    return ("tokens: %s\nsegment_ids: %s\nis_random_next: %s\n"
            "masked_lm_positions: %s\nmasked_lm_labels: %s\n\n" % (
                " ".join(self.tokens), " ".join(map(str, self.segment_ids)),
                self.is_random_next,
                " ".join(map(str, self.masked_lm_positions)),
                " ".join(self.masked_lm_labels)))

  __repr__ = __str__


@dataclasses.dataclass
class InstanceOptions:
  """How instances are made from documents (the original flags and schemes).

  Attributes:
    max_seq_length: tokens per instance, special tokens included.
    max_predictions_per_seq: cap on masked positions per instance.
    masked_lm_prob: fraction of tokens to mask.
    short_seq_prob: probability of a shorter random target length.
    masking: a `MaskingStrategy`.
    sentence_task: a `SentenceTask`.
  """
  max_seq_length: int = 128
  max_predictions_per_seq: int = 20
  masked_lm_prob: float = 0.15
  short_seq_prob: float = 0.1
  masking: masking_lib.MaskingStrategy = dataclasses.field(
      default_factory=masking_lib.TokenMasking)
  sentence_task: sentence_tasks.SentenceTask = dataclasses.field(
      default_factory=sentence_tasks.NextSentencePrediction)


def truncate_seq_pair_randomly(tokens_a, tokens_b, max_num_tokens, rng):
  """Truncates the longer segment, at a random end, until both fit (in place).

  The original `create_pretraining_data.truncate_seq_pair`; fine-tuning
  inputs are cut deterministically, from the end
  (`sentence_pairs.truncate_seq_pair`, the original `_truncate_seq_pair`).

  Each step removes one token of the longer segment (B on a tie), from the
  front or the back with one `rng.random() < 0.5` each, as the original. The
  order of the steps is known beforehand: the longer segment alone until it
  is the shorter by one, then the two in turn; so the draws are made at once
  (`InstanceRandom.coin_flips`) and counted per segment, and the lists cut
  once.

  Args:
    tokens_a: list of tokens, shortened in place.
    tokens_b: list of tokens (may be empty), shortened in place.
    max_num_tokens: the budget for both together.
    rng: an `InstanceRandom` (or a `random.Random`: the exact draws).
  """
  num_steps = len(tokens_a) + len(tokens_b) - max_num_tokens
  if num_steps <= 0:
    return
  # True: cut the front.
  fronts = randomness.batch_draws(rng).coin_flips(num_steps)
  if len(tokens_a) > len(tokens_b):
    first, second = tokens_a, tokens_b
    alone = len(tokens_a) - len(tokens_b)
  else:
    first, second = tokens_b, tokens_a
    alone = len(tokens_b) - len(tokens_a) + 1
  # Steps 0 .. alone-1 cut `first`; then `second`, `first`, `second`, ...
  for tokens, steps in ((first, fronts[:alone] + fronts[alone + 1::2]),
                        (second, fronts[alone::2])):
    front = sum(steps)
    del tokens[len(tokens) - (len(steps) - front):]
    del tokens[:front]


def instance_segments(all_documents, document_index, options, rng):
  """Yields the segments of the instances of one document, as the original.

  The original's loop: a target length (shorter with `short_seq_prob`),
  chunks of consecutive sentences up to it, the sentence task's segments and
  label for each chunk, the truncation to the budget. The consumer of each
  instance (its masking) runs before the next one is made, so the draws stay
  in the original's order.

  Args:
    all_documents: list of documents (lists of sentences, lists of tokens:
      strings, or ids for the batched parallel mode).
    document_index: the document to make instances from.
    options: `InstanceOptions`.
    rng: a `random.Random`.

  Yields:
    (tokens_a, tokens_b, label): new lists (`tokens_b` None for a
    one-segment task) that fit `max_seq_length` with the special tokens,
    and the task's label (None for a task without one).
  """
  document = all_documents[document_index]
  task = options.sentence_task
  max_num_tokens = options.max_seq_length - task.num_special_tokens()
  # Mostly fill the sequence; sometimes (short_seq_prob) aim shorter, to
  # resemble fine-tuning inputs. A target, not a hard limit.
  target_seq_length = max_num_tokens
  if rng.random() < options.short_seq_prob:
    target_seq_length = rng.randint(2, max_num_tokens)

  current_chunk = []
  current_length = 0
  i = 0
  while i < len(document):
    current_chunk.append(document[i])
    current_length += len(document[i])
    if i == len(document) - 1 or current_length >= target_seq_length:
      tokens_a, tokens_b, label, num_unused = task.make_segments(
          current_chunk, all_documents, document_index, target_seq_length, rng)
      i -= num_unused
      truncate_seq_pair_randomly(
          tokens_a, tokens_b if tokens_b is not None else [], max_num_tokens,
          rng)
      yield tokens_a, tokens_b, label
      current_chunk = []
      current_length = 0
    i += 1


def create_instances_from_document(all_documents, document_index, options,
                                   vocab_words, rng):
  """Creates the `TrainingInstance`s of one document.

  Args:
    all_documents: list of documents (lists of sentences, lists of tokens).
    document_index: the document to make instances from.
    options: `InstanceOptions`.
    vocab_words: list of vocabulary tokens (random replacements).
    rng: a `random.Random`.

  Returns:
    A list of `TrainingInstance`s, in document order.
  """
  instances = []
  for tokens_a, tokens_b, label in instance_segments(
      all_documents, document_index, options, rng):
    tokens = [masking_lib.CLS] + tokens_a + [masking_lib.SEP]
    segment_ids = [0] * len(tokens)
    if tokens_b is not None:
      tokens += tokens_b + [masking_lib.SEP]
      segment_ids += [1] * (len(tokens_b) + 1)
    tokens, positions, labels, spans = masking_lib.mask_groups(
        tokens, options.masked_lm_prob, options.max_predictions_per_seq,
        vocab_words, rng, options.masking)
    instances.append(TrainingInstance(tokens, segment_ids, positions,
                                      labels, label, spans))
  return instances


def create_training_instances(all_documents, options, dupe_factor,
                              vocab_words, rng, progress=None):
  """Creates the instances of a corpus as the original does.

  Shuffles the documents, makes `dupe_factor` passes over them (each with
  new random choices) and shuffles all the instances together.

  Args:
    all_documents: list of non-empty documents; shuffled in place.
    options: `InstanceOptions`.
    dupe_factor: number of passes.
    vocab_words: list of vocabulary tokens.
    rng: a `random.Random`.
    progress: optional `Progress`, told of the instances of each document.

  Returns:
    The list of `TrainingInstance`s, shuffled.
  """
  rng.shuffle(all_documents)
  instances = []
  for _ in range(dupe_factor):
    for document_index in range(len(all_documents)):
      made = create_instances_from_document(all_documents, document_index,
                                            options, vocab_words, rng)
      instances.extend(made)
      if progress:
        progress.add(instances=len(made))
  rng.shuffle(instances)
  return instances
