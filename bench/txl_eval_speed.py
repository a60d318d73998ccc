"""Transformer-XL evaluation speed: memory reuse against a sliding window.

At attention length A, both ways score the same tokens of the same byte
streams (enwik8_small, `--batch` streams side by side) with the same model:

- memory: segments of A/2 tokens with a memory of A/2 (mem_len = A/2), one
  forward pass per segment; each token sees between A/2 + 1 and A tokens;
- sliding window: for every token, a forward pass over the A tokens that end
  at it, without memory, keeping the last position's prediction (the vanilla
  evaluation of Al-Rfou et al. that the Transformer-XL paper compares to);
  each token sees A tokens.

Both run as `tf.function`s with fixed shapes, traced before timing. Rounds
alternate the two ways so the machine's noise hits both; the report gives the
median seconds per 1,000 scored tokens of each, and the ratio sliding /
memory, per attention length.

Usage:
  python bench/txl_eval_speed.py --lengths 32,64,128,256 --rounds 3
"""

import argparse
import os
import pathlib
import statistics
import time

import numpy as np
import tensorflow as tf

from bert_tf.data import lm_bytes
from bert_tf.modeling import transformer_xl
from bert_tf.tasks import transformer_xl_lm

CORPUS = (pathlib.Path(__file__).resolve().parents[2] / "shared" /
          "fixtures" / "corpora" / "enwik8_small.txt")


def build_model(n_token, mem_len, args):
  """The small benchmark model (random weights) with `mem_len`."""
  tf.random.set_seed(0)
  return transformer_xl.TransformerXL(transformer_xl.TransformerXLConfig(
      n_token=n_token, n_layer=args.n_layer, d_model=args.d_model,
      d_embed=args.d_model, n_head=args.n_head,
      d_head=args.d_model // args.n_head, d_inner=4 * args.d_model,
      dropout=0.0, dropatt=0.0, mem_len=mem_len))


def memory_eval(model, streams, attention_length, num_tokens):
  """Scores `num_tokens` per stream, segment by segment with memory.

  Args:
    model: `TransformerXL` with mem_len = attention_length // 2.
    streams: int32 [batch, length] ids; tokens attention_length ..
      attention_length + num_tokens - 1 are predicted.
    attention_length: A.
    num_tokens: multiple of A / 2.

  Returns:
    A function running the evaluation and returning the summed nll.
  """
  qlen = attention_length // 2
  batch = streams.shape[0]
  first = attention_length - 1  # the input of the first scored target
  inputs = tf.constant(streams.T)  # [length, batch], time-major

  @tf.function(input_signature=[
      tf.TensorSpec([qlen, batch], tf.int32),
      tf.TensorSpec([qlen, batch], tf.int32),
      [tf.TensorSpec([qlen, batch, model.config.d_model])] *
      model.config.n_layer])
  def segment(x, y, mems):
    outputs = model(x, mems=mems, targets=y)
    return (tf.reduce_sum(transformer_xl_lm.token_nll(outputs)),
            outputs["new_mems"])

  def run():
    mems = model.init_mems(batch)
    total = 0.0
    # One unscored segment fills the memory, then segments of scored tokens.
    for t in range(first - qlen, first + num_tokens, qlen):
      nll, mems = segment(inputs[t:t + qlen], inputs[t + 1:t + qlen + 1],
                          mems)
      if t >= first:
        total += float(nll)
    return total

  return run


def sliding_eval(model, streams, attention_length, num_tokens):
  """Scores the same tokens with one window of A tokens per token.

  Args:
    model: `TransformerXL` (its memory is not used).
    streams: int32 [batch, length] ids.
    attention_length: A.
    num_tokens: tokens to score per stream.

  Returns:
    A function running the evaluation and returning the summed nll.
  """
  batch = streams.shape[0]
  inputs = tf.constant(streams.T)

  @tf.function(input_signature=[
      tf.TensorSpec([attention_length, batch], tf.int32)] * 2)
  def window(x, y):
    nll = transformer_xl_lm.token_nll(model(x, targets=y))  # [A, batch]
    return tf.reduce_sum(nll[-1])

  def run():
    total = 0.0
    for t in range(attention_length - 1,
                   attention_length - 1 + num_tokens):
      total += float(window(inputs[t - attention_length + 1:t + 1],
                            inputs[t - attention_length + 2:t + 2]))
    return total

  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--lengths", default="32,64,128,256",
                      help="attention lengths A (even), comma separated")
  parser.add_argument("--tokens", type=int, default=128,
                      help="tokens scored per stream (a multiple of every "
                      "A / 2)")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--n_layer", type=int, default=4)
  parser.add_argument("--d_model", type=int, default=128)
  parser.add_argument("--n_head", type=int, default=4)
  args = parser.parse_args()

  data = CORPUS.read_bytes()
  vocab = lm_bytes.build_vocab(data)
  ids = lm_bytes.encode(data, vocab, source=str(CORPUS)).astype(np.int32)
  print("model: %d layers, d_model %d, %d heads, d_inner %d; batch %d; "
        "%d tokens per stream; %d CPUs" %
        (args.n_layer, args.d_model, args.n_head, 4 * args.d_model,
         args.batch, args.tokens, os.cpu_count()))
  print("%6s %14s %14s %8s" % ("A", "memory s/1k", "sliding s/1k",
                               "ratio"))
  for length in [int(a) for a in args.lengths.split(",")]:
    if length % 2 or args.tokens % (length // 2):
      raise ValueError("--tokens=%d must be a multiple of A/2 for A=%d" %
                       (args.tokens, length))
    need = 2 * length + args.tokens + 1
    streams = lm_bytes.batchify(ids, args.batch)[:, :need]
    model = build_model(len(vocab), length // 2, args)
    ways = {"memory": memory_eval(model, streams, length, args.tokens),
            "sliding": sliding_eval(model, streams, length, args.tokens)}
    for run in ways.values():
      run()  # traces
    times = {name: [] for name in ways}
    for _ in range(args.rounds):
      for name, run in ways.items():
        started = time.perf_counter()
        run()
        times[name].append(time.perf_counter() - started)
    scored = args.tokens * args.batch / 1000.0
    medians = {n: statistics.median(t) / scored for n, t in times.items()}
    print("%6d %14.4f %14.4f %7.1fx" %
          (length, medians["memory"], medians["sliding"],
           medians["sliding"] / medians["memory"]), flush=True)


if __name__ == "__main__":
  main()
