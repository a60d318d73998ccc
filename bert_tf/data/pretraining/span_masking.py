"""SpanBERT's span masking: spans of whole words, one decision per span.

A masking scheme of its own module, registered in `MASKING_STRATEGIES` as
`span` (`--masking=span`): the way to add a scheme.
"""

from bert_tf.data.pretraining import masking


class SpanMasking(masking.MaskingStrategy):
  """SpanBERT's span masking: spans of whole words, one decision per span.

  Until `num_to_predict` tokens are chosen: draw a length L in words from
  the geometric distribution P(L = k) ~ p (1 - p)^(k - 1) truncated to
  1 <= k <= max_span_length and renormalized (p = 0.2, max 10: mean 3.80
  words), draw an anchor uniformly among the tokens that are not `[CLS]` or
  `[SEP]`; if it is not masked yet, the span starts at the start of the
  anchor's word and takes L words, fewer where the segment ends (a span never
  crosses `[CLS]`/`[SEP]`). The last span is cut at the token that fills the
  budget. Overlapping or adjacent spans are merged, as SpanBERT's
  `merge_intervals`; each merged span gets one 80/10/10 decision.

  A word is a token not starting with `##` and the `##` pieces after it; a
  `##` piece right after `[CLS]`/`[SEP]` starts a word.
  """

  name = "span"
  decide_per_group = True
  span_boundary_features = True

  def __init__(self, geometric_p=0.2, max_span_length=10):
    """Sets the span length distribution.

    Args:
      geometric_p: p of the geometric distribution, in (0, 1]
        (--span_geometric_p).
      max_span_length: the longest span, in words, at least 1
        (--span_max_length).

    Raises:
      ValueError: naming the flag, for a value out of range.
    """
    if not 0.0 < geometric_p <= 1.0:
      raise ValueError("--span_geometric_p=%g: expected a value in (0, 1]" %
                       geometric_p)
    if max_span_length < 1:
      raise ValueError("--span_max_length=%d: expected at least 1" %
                       max_span_length)
    self.geometric_p = geometric_p
    self.max_span_length = max_span_length
    weights = [geometric_p * (1.0 - geometric_p) ** (k - 1)
               for k in range(1, max_span_length + 1)]
    total = sum(weights)
    # length_probabilities[k - 1] = P(L = k).
    self.length_probabilities = [w / total for w in weights]
    self._cumulative = []
    running = 0.0
    for probability in self.length_probabilities:
      running += probability
      self._cumulative.append(running)

  def expected_span_length(self):
    """Returns E[L], the mean drawn span length in words."""
    return sum(k * prob
               for k, prob in enumerate(self.length_probabilities, start=1))

  def sample_span_length(self, rng):
    """Draws a span length in words (one `rng.random()`)."""
    u = rng.random()
    for k, bound in enumerate(self._cumulative, start=1):
      if u < bound:
        return k
    return self.max_span_length

  def candidate_groups(self, tokens):
    """Returns the words (lists of positions) between the special tokens."""
    words = []
    for i, token in enumerate(tokens):
      if token in (masking.CLS, masking.SEP):
        continue
      if token.startswith("##") and words and words[-1][-1] == i - 1:
        words[-1].append(i)
      else:
        words.append([i])
    return words

  def sample_spans(self, tokens, num_to_predict, rng):
    """Draws the spans, before merging.

    Args:
      tokens: list of token strings.
      num_to_predict: how many positions to mask (fewer if there are fewer
        candidates).
      rng: a `random.Random`.

    Returns:
      A list of (start, end, num_words) in the order drawn: positions
      [start, end) are masked, `num_words` is the drawn length (the span
      holds fewer words when the segment or the budget ends it).
    """
    words = self.candidate_groups(tokens)
    word_of = {}
    for w, word in enumerate(words):
      for i in word:
        word_of[i] = w
    candidates = sorted(word_of)
    num_to_predict = min(num_to_predict, len(candidates))
    masked = set()
    spans = []
    while len(masked) < num_to_predict:
      num_words = self.sample_span_length(rng)
      anchor = candidates[rng.randint(0, len(candidates) - 1)]
      if anchor in masked:
        continue
      w = word_of[anchor]
      start = end = words[w][0]
      for k in range(num_words):
        # The next word must follow without a special token in between.
        if k and (w + k >= len(words) or words[w + k][0] != end):
          break
        for i in words[w + k]:
          if len(masked) >= num_to_predict:
            break
          masked.add(i)
          end = i + 1
      spans.append((start, end, num_words))
    return spans

  def select_groups(self, tokens, num_to_predict, rng):
    """Yields the merged spans, by position, as lists of positions."""
    merged = []
    for start, end, _ in sorted(self.sample_spans(tokens, num_to_predict,
                                                  rng)):
      if merged and start <= merged[-1][1]:
        merged[-1][1] = max(merged[-1][1], end)
      else:
        merged.append([start, end])
    for start, end in merged:
      yield list(range(start, end))


masking.MASKING_STRATEGIES[SpanMasking.name] = SpanMasking
