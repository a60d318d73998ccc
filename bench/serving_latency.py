"""Serving: latency at batch 1 and throughput at batch 32, SavedModel vs in-process.

One classifier (random weights; `--shape small` = 4 layers, hidden 256, or
`base` = BERT-base) is exported with `bert_tf.serving.export` and reloaded with
`tf.saved_model.load`. Four paths are timed in one process, interleaved over
rounds, at `--seq_length` tokens:

- `keras ids`: the in-process Keras model in a `tf.function` on token ids;
- `keras text`: Python `FullTokenizer` + packing, then that function;
- `savedmodel ids`: the export's `serving_default`;
- `savedmodel text`: the export's `serve_text` (tokenization in the graph).

Then batch-1 `serve_text` latency on short texts (pairs of `--short_words`
words each), interleaved over rounds, for two exports of the same model:
`serve_text` padded to the request's longest text (the default) and padded
to `--seq_length` (`pad_text_to_longest=False`, as before issue 19).

Then concurrent callers: `--callers` threads (default 1, 4, 8) each send
batch-1 `serve_text` requests to the one loaded SavedModel for `--seconds`;
the table gives requests/s and the median request latency.

Usage: python bench/serving_latency.py [--shape small] [--rounds 5]
"""

import argparse
import concurrent.futures
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the export's tokenizer ops)

from bert_tf import serving
from bert_tf import tokenization
from bert_tf.data import sentence_pairs
from bert_tf.modeling import BertConfig

SHAPES = {"small": (4, 256, 4, 1024), "base": (12, 768, 12, 3072)}
VOCAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                     "shared", "fixtures", "vocab", "uncased_vocab.txt")
CORPUS = os.path.join(os.path.dirname(VOCAB), "..", "corpora",
                      "wikitext2_valid.tokens")


def texts_of_length(seq_length, count):
  """Pairs of corpus lines long enough to fill `seq_length` tokens."""
  lines = [l.strip() for l in open(CORPUS, encoding="utf-8")
           if len(l.split()) > seq_length // 2]
  return [(lines[2 * i], lines[2 * i + 1]) for i in range(count)]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shape", default="small", choices=sorted(SHAPES))
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--latency_calls", type=int, default=20)
  parser.add_argument("--throughput_calls", type=int, default=5)
  parser.add_argument("--short_words", type=int, default=8,
                      help="Words of each text of the short-text pairs.")
  parser.add_argument("--callers", default="1,4,8",
                      help="Comma-separated numbers of concurrent callers.")
  parser.add_argument("--seconds", type=float, default=10.0,
                      help="Duration of each concurrent-callers run.")
  args = parser.parse_args()

  layers, hidden, heads, inter = SHAPES[args.shape]
  tokenizer = tokenization.FullTokenizer(VOCAB, True)
  config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=hidden,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=inter, max_position_embeddings=512,
                      type_vocab_size=2)
  model = serving.build_model(config, "classifier", num_labels=2)
  export_dir = os.path.join(tempfile.mkdtemp(), "export")
  serving.export(config, None, VOCAB, True, args.seq_length, "classifier",
                 export_dir, model=model)
  fixed_dir = os.path.join(os.path.dirname(export_dir), "fixed")
  serving.export(config, None, VOCAB, True, args.seq_length, "classifier",
                 fixed_dir, model=model, signatures=["serve_text"],
                 pad_text_to_longest=False)
  loaded = tf.saved_model.load(export_dir)
  serve_ids = loaded.signatures["serving_default"]
  serve_text = loaded.signatures["serve_text"]
  spec = tf.TensorSpec([None, None], tf.int32)

  @tf.function(input_signature=[spec, spec, spec])
  def keras_ids(ids, mask, types):
    return model({"input_ids": ids, "input_mask": mask, "segment_ids": types},
                 training=False)["probabilities"]

  def pack(pairs):
    packed = [sentence_pairs.pack_tokens(
        tokenizer.tokenize(a), tokenizer.tokenize(b), args.seq_length,
        tokenizer.convert_tokens_to_ids) for a, b in pairs]
    return [tf.constant([getattr(p, n) for p in packed], tf.int32)
            for n in ("input_ids", "input_mask", "segment_ids")]

  pairs = texts_of_length(args.seq_length, 32)
  batches = {1: pairs[:1], 32: pairs}
  ids = {size: pack(batch) for size, batch in batches.items()}
  text = {size: (tf.constant([a for a, _ in batch]),
                 tf.constant([b for _, b in batch]))
          for size, batch in batches.items()}
  paths = {
      "keras ids": lambda n: keras_ids(*ids[n]),
      "keras text": lambda n: keras_ids(*pack(batches[n])),
      "savedmodel ids": lambda n: serve_ids(
          input_ids=ids[n][0], input_mask=ids[n][1],
          segment_ids=ids[n][2])["probabilities"],
      "savedmodel text": lambda n: serve_text(
          text_a=text[n][0], text_b=text[n][1])["probabilities"],
  }
  reference = paths["keras ids"](32).numpy()
  for name, run in paths.items():  # same outputs, and warm-up
    np.testing.assert_allclose(run(32).numpy(), reference, atol=1e-5,
                               err_msg=name)
    run(1)

  latency = {name: [] for name in paths}
  throughput = {name: [] for name in paths}
  for _ in range(args.rounds):
    for name, run in paths.items():
      for _ in range(args.latency_calls):
        start = time.perf_counter()
        run(1).numpy()
        latency[name].append(1000 * (time.perf_counter() - start))
      start = time.perf_counter()
      for _ in range(args.throughput_calls):
        run(32).numpy()
      throughput[name].append(
          32 * args.throughput_calls / (time.perf_counter() - start))

  print("%s classifier, %d tokens, medians of %d rounds" %
        (args.shape, args.seq_length, args.rounds))
  print("%-16s %18s %22s" % ("path", "batch 1 latency ms",
                             "batch 32 examples/s"))
  for name in paths:
    print("%-16s %18.1f %22.1f" % (name, statistics.median(latency[name]),
                                   statistics.median(throughput[name])))

  short_latency(args, pairs, {
      "padded to the longest": serve_text,
      "padded to %d" % args.seq_length:
          tf.saved_model.load(fixed_dir).signatures["serve_text"]})

  print("\nconcurrent batch-1 serve_text callers, %.0f s each" % args.seconds)
  print("%-8s %14s %20s" % ("callers", "requests/s", "median latency ms"))
  for callers in [int(c) for c in args.callers.split(",")]:
    rate, latency_ms = concurrent_callers(
        lambda i: serve_text(text_a=tf.constant([pairs[i % 32][0]]),
                             text_b=tf.constant([pairs[i % 32][1]])),
        callers, args.seconds)
    print("%-8d %14.1f %20.1f" % (callers, rate, latency_ms))


def short_latency(args, pairs, exports):
  """Prints batch-1 latency of `serve_text` exports on short texts.

  Args:
    args: the parsed flags (`short_words`, `rounds`, `latency_calls`).
    pairs: (text_a, text_b) pairs; their first `short_words` words are sent.
    exports: dict of name -> a loaded `serve_text` signature.
  """
  short = [(" ".join(a.split()[:args.short_words]),
            " ".join(b.split()[:args.short_words])) for a, b in pairs]
  requests = [(tf.constant([a]), tf.constant([b])) for a, b in short]
  for a, b in requests:  # same outputs, and warm-up of every shape
    outputs = [run(text_a=a, text_b=b)["probabilities"].numpy()
               for run in exports.values()]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
  latency = {name: [] for name in exports}
  for _ in range(args.rounds):
    for name, run in exports.items():
      for i in range(args.latency_calls):
        a, b = requests[i % len(requests)]
        start = time.perf_counter()
        run(text_a=a, text_b=b)["probabilities"].numpy()
        latency[name].append(1000 * (time.perf_counter() - start))
  print("\nbatch-1 serve_text on short texts (%d words each), medians" %
        args.short_words)
  for name in exports:
    print("%-24s %8.2f ms" % (name, statistics.median(latency[name])))
  ratio = statistics.median(latency[list(exports)[1]]) / statistics.median(
      latency[list(exports)[0]])
  print("%-24s %8.2fx" % ("speed-up", ratio))


def concurrent_callers(request, callers, seconds):
  """Runs `request(i)` from `callers` threads for `seconds`.

  Args:
    request: a function of a request index returning a dict of Tensors.
    callers: number of threads calling at once.
    seconds: how long each thread keeps calling.

  Returns:
    (requests per second over all threads, median latency in ms).
  """
  def caller(index):
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
      start = time.perf_counter()
      for value in request(index + len(latencies)).values():
        value.numpy()
      latencies.append(1000 * (time.perf_counter() - start))
    return latencies

  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(max_workers=callers) as pool:
    latencies = sum(pool.map(caller, range(callers)), [])
  return len(latencies) / (time.perf_counter() - start), statistics.median(
      latencies)


if __name__ == "__main__":
  main()
