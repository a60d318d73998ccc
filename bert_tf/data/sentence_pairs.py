"""Packing one or two tokenized texts into BERT's fixed-length inputs.

The convention of the original `extract_features.py` and `run_classifier.py`:

  pair:    [CLS] a1 a2 [SEP] b1 b2 [SEP]   segment ids 0 0 0 0 1 1 1
  single:  [CLS] a1 a2 [SEP]               segment ids 0 0 0 0

then zero padding to `max_seq_length`, with `input_mask` 1 on real tokens.
"""

import collections

PackedInputs = collections.namedtuple(
    "PackedInputs", ["tokens", "input_ids", "input_mask", "segment_ids"])


def truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Truncates a pair in place, one token at a time from the longer one.

  The original `run_classifier._truncate_seq_pair`: deterministic, always
  from the end. Pretraining instances cut at random ends instead
  (`pretraining.instances.truncate_seq_pair_randomly`).

  Args:
    tokens_a: list of tokens, shortened in place.
    tokens_b: list of tokens, shortened in place.
    max_length: the most tokens both lists may hold together.
  """
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def pack_tokens(tokens_a, tokens_b, max_seq_length, convert_tokens_to_ids):
  """Truncates, adds [CLS]/[SEP], converts to ids and pads, as the original.

  Args:
    tokens_a: list of WordPiece tokens of the first text.
    tokens_b: list of tokens of the second text, or None/empty for one text.
    max_seq_length: length of the padded outputs (at least 3 for a pair,
      2 for one text).
    convert_tokens_to_ids: function mapping a list of tokens to ids.

  Returns:
    A `PackedInputs` with `tokens` (unpadded, with [CLS]/[SEP]) and the
    padded `input_ids`, `input_mask` and `segment_ids` lists.
  """
  tokens_a = list(tokens_a)
  tokens_b = list(tokens_b) if tokens_b else []
  if tokens_b:
    truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  else:
    tokens_a = tokens_a[:max_seq_length - 2]
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)
  input_ids = list(convert_tokens_to_ids(tokens))
  padding = [0] * (max_seq_length - len(tokens))
  return PackedInputs(tokens=tokens, input_ids=input_ids + padding,
                      input_mask=[1] * len(tokens) + padding,
                      segment_ids=segment_ids + padding)
