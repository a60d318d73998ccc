"""The random sources of instance making: the original's draws, or cheaper ones.

Instance making draws through `InstanceRandom`, a `random.Random` with batch
operations (`shuffle`, `shuffled_head`, `coin_flips`, `replacements`).
`InstanceRandom` makes exactly the original `create_pretraining_data.py`'s
draws, in its order, for every masking scheme (the faithful mode);
`NumpyInstanceRandom` makes the batch operations from NumPy with the same
distributions (the parallel mode, whose stream differs from the original's
anyway). `batch_draws` lends a plain `random.Random` the exact batch
operations, so the instance functions take any `random.Random`, as the
original's.
"""

import random

import numpy as np


# Replacement codes of `replacements`: a masked position becomes `[MASK]`,
# keeps its token, or (a code >= 0) becomes that vocabulary word.
REPLACE_MASK, REPLACE_KEEP = -1, -2


class InstanceRandom(random.Random):
  """The exact random source: the original's draws, in the original's order.

  Besides `random.Random`'s methods (which it keeps, so seeded alike the
  stream of choices is the original's), instance making asks it for batch
  operations, which a cheaper source (`NumpyInstanceRandom`) may make
  differently with the same distributions:

  * `randint(a, b)`: `random.Random.randint`'s values, its `_randbelow`
    draw without `randrange`'s argument checks;
  * `shuffle(x)`: the same orders as `random.Random.shuffle`, its
    `_randbelow` draws made inline; `shuffled_head(x, k)`: the first k items
    after `shuffle(x)`;
  * `coin_flips(n)`: n `random() < 0.5`, in turn (`truncate_seq_pair_randomly`);
  * `replacements(group_sizes, vocab_size, per_group)`: the 80/10/10
    replacement of masked positions, drawn as the original per token (or, for
    SpanBERT, one decision per group then a random word per token).
  """

  def randint(self, a, b):
    """Returns an int in [a, b], as `random.Random.randint`."""
    n = b - a + 1
    if n <= 0:
      raise ValueError("empty range for randint(%d, %d)" % (a, b))
    # `randrange`'s own draw, without its argument checks.
    return a + self._randbelow(n)

  def shuffle(self, x):
    """Shuffles list `x` in place, as `random.Random.shuffle`."""
    getrandbits = self.getrandbits
    for i in reversed(range(1, len(x))):
      n = i + 1
      k = n.bit_length()
      j = getrandbits(k)  # Rejection sampling, as `_randbelow`.
      while j >= n:
        j = getrandbits(k)
      x[i], x[j] = x[j], x[i]

  def shuffled_head(self, x, k):
    """Shuffles list `x` in place; returns its first `k` items (a list)."""
    self.shuffle(x)
    return x[:k]

  def coin_flips(self, n):
    """Returns n bools, each `random() < 0.5`, drawn in turn."""
    random_ = self.random
    return [random_() < 0.5 for _ in range(n)]

  def replacements(self, group_sizes, vocab_size, per_group):
    """Draws the replacement of each position of the masked groups.

    As the original: `random() < 0.8` masks; else `random() < 0.5` keeps;
    else `randint(0, vocab_size - 1)` picks the word. With `per_group` the
    first two draws are made once per group and the word once per position.

    Args:
      group_sizes: the number of positions of each group, in the order the
        groups were chosen.
      vocab_size: the number of vocabulary words.
      per_group: one decision per group instead of one per position.

    Returns:
      A list with one code per position, group after group: `REPLACE_MASK`,
      `REPLACE_KEEP` or the index of the random word.
    """
    random_, randbelow = self.random, self._randbelow
    codes = []
    append = codes.append
    decision = None
    for size in group_sizes:
      for t in range(size):
        if not t or not per_group:
          if random_() < 0.8:
            decision = REPLACE_MASK
          elif random_() < 0.5:
            decision = REPLACE_KEEP
          else:
            decision = None
        if decision is None:
          append(randbelow(vocab_size))  # `randint(0, vocab_size - 1)`.
        else:
          append(decision)
    return codes


class _ExactDraws(InstanceRandom):
  """`InstanceRandom`'s batch draws on a plain `random.Random` (shared state).

  Lets the instance functions take any `random.Random`, as the original's.
  """

  def __init__(self, rng):  # pylint: disable=super-init-not-called
    self.random, self.getrandbits = rng.random, rng.getrandbits
    self.randint, self.shuffle = rng.randint, rng.shuffle
    # `shuffled_head` and the rest are `InstanceRandom`'s, on these.


def batch_draws(rng):
  """Returns `rng` if it makes batch draws, else its exact `_ExactDraws`."""
  return rng if isinstance(rng, InstanceRandom) else _ExactDraws(rng)


class _DrawBuffer(object):
  """Hands out draws made by NumPy in blocks, as Python lists."""

  def __init__(self, make_block, block_size=1 << 14):
    """Starts empty.

    Args:
      make_block: function from a count m to a NumPy array of m draws.
      block_size: the fewest draws made at once.
    """
    self._make_block = make_block
    self._block_size = block_size
    self._items = []
    self._position = 0

  def take(self, n):
    """Returns the next `n` draws (a list)."""
    end = self._position + n
    if end > len(self._items):
      self._items = self._items[self._position:] + self._make_block(
          max(n, self._block_size)).tolist()
      self._position, end = 0, n
    items = self._items[self._position:end]
    self._position = end
    return items


class NumpyInstanceRandom(InstanceRandom):
  """A cheaper random source with the same distributions (parallel mode).

  Its scalar draws (`random`, `randint`: target lengths, split points, random
  documents, spans) are `random.Random`'s, seeded with `seed`. The batch
  operations come from a NumPy `Generator` seeded from the same seed:
  `shuffle` applies a NumPy permutation; uniforms, coin flips and
  replacement codes are drawn vectorized in blocks and handed out in turn,
  and `shuffled_head` makes only the k swaps of a Fisher-Yates shuffle that
  fix its first k items. Deterministic for a given seed and sequence of
  calls; not the original's stream.
  """

  def __init__(self, seed):
    """Seeds both generators from `seed` (an int or str)."""
    super().__init__(seed)
    generator = np.random.default_rng(
        random.Random("numpy:%s" % (seed,)).getrandbits(128))
    self._generator = generator
    self._uniforms = _DrawBuffer(generator.random)
    self._coins = _DrawBuffer(lambda m: generator.random(m) < 0.5)
    self._vocab_size = None

  @property
  def generator(self):
    """The NumPy `Generator` of the batch draws (for batched instances)."""
    return self._generator

  def shuffle(self, x):
    """Shuffles list `x` in place with a uniform NumPy permutation."""
    if len(x) > 1:
      x[:] = [x[i] for i in self._generator.permutation(len(x)).tolist()]

  def shuffled_head(self, x, k):
    """Returns `k` items of `x` uniformly at random, in random order.

    The first `k` steps of a Fisher-Yates shuffle from the front: `x[:k]`
    then has the distribution of the first `k` items of a uniform
    permutation; `x` is left permuted.
    """
    n = len(x)
    k = min(k, n)
    for i, u in zip(range(k), self._uniforms.take(k)):
      j = i + int(u * (n - i))
      x[i], x[j] = x[j], x[i]
    return x[:k]

  def coin_flips(self, n):
    """Returns n fair bools."""
    return self._coins.take(n)

  def replacements(self, group_sizes, vocab_size, per_group):
    """Draws replacement codes: 80% mask, 10% keep, 10% a uniform word.

    Same arguments, codes and distributions as `InstanceRandom`'s.
    """
    if vocab_size != self._vocab_size:
      generator = self._generator

      def codes(m):
        u = generator.random(m)
        words = generator.integers(0, vocab_size, m)
        return np.where(u < 0.8, REPLACE_MASK,
                        np.where(u < 0.9, REPLACE_KEEP, words))

      self._codes = _DrawBuffer(codes)
      self._words = _DrawBuffer(lambda m: generator.integers(0, vocab_size, m))
      self._vocab_size = vocab_size
    if not per_group:
      return self._codes.take(sum(group_sizes))
    codes = []
    for size, code in zip(group_sizes, self._codes.take(len(group_sizes))):
      if code >= 0:  # A random group: a word for each position.
        codes.append(code)
        codes.extend(self._words.take(size - 1))
      else:
        codes.extend([code] * size)
    return codes
