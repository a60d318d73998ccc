"""Long inputs: time and peak memory of full vs query-chunked attention.

A BERT-base-shaped encoder (12 layers, hidden 768, 12 heads, intermediate 3072,
30,522 words, 512 learned positions extended by `hierarchical_position_alpha`
0.4) encodes one sequence (batch 1, inference) of 512, 2,048 and 8,192 tokens,
with full attention (`attention_chunk_size` null) and with query chunks of
`--chunk_size`. Every measurement runs in a fresh subprocess, so its peak RSS
(`ru_maxrss`) is that measurement's alone; the weights are random (same shapes,
same work as a checkpoint).

In each subprocess the encoder is traced once as a `tf.function` with a dynamic
length (on a 16-token input), then timed on the long input `--repeats` times
(fewer at 8,192 tokens, see `--long_repeats`); the median is reported. Full
attention at 8,192 tokens holds [12, 8192, 8192] float32 logits (3.2 GB per
copy); it is skipped unless the machine has `--full_8192_min_free_gb` free.

Usage:
  PYTHONPATH=. python bench/long_inputs.py            # writes bench/long_inputs.md
  PYTHONPATH=. python bench/long_inputs.py --lengths 512,2048
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(length, chunk_size, repeats):
  """Runs in the subprocess: encodes `length` tokens; prints one JSON line."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_tf.modeling import BertConfig, BertModel  # pylint: disable=g-import-not-at-top

  config = BertConfig.from_dict({
      "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
      "num_attention_heads": 12, "intermediate_size": 3072,
      "max_position_embeddings": 512, "type_vocab_size": 2,
      "hierarchical_position_alpha": 0.4,
      "attention_chunk_size": chunk_size or None})
  model = BertModel(config)

  @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32)])
  def encode(ids):
    return model(ids, training=False)["sequence_output"]

  encode(tf.ones([1, 16], tf.int32))  # trace once
  rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  ids = tf.constant(np.random.RandomState(0).randint(
      0, config.vocab_size, [1, length]), tf.int32)
  seconds = []
  for _ in range(repeats):
    began = time.perf_counter()
    output = encode(ids).numpy()
    seconds.append(time.perf_counter() - began)
  assert output.shape == (1, length, 768) and np.isfinite(output).all()
  print(json.dumps({
      "length": length, "chunk_size": chunk_size, "seconds": seconds,
      "model_rss_gb": rss_before / 2 ** 20,
      "peak_rss_gb": resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}))


def available_gb():
  """MemAvailable from /proc/meminfo, in GB."""
  with open("/proc/meminfo") as meminfo:
    for line in meminfo:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) / 2 ** 20
  return 0.0


def run_child(length, chunk_size, repeats):
  """Runs one measurement in a subprocess and returns its JSON result."""
  command = [sys.executable, os.path.abspath(__file__), "--child",
             "--lengths", str(length), "--chunk_size", str(chunk_size),
             "--repeats", str(repeats)]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    return {"length": length, "chunk_size": chunk_size,
            "error": "exit %d: %s" % (result.returncode,
                                      result.stderr.strip()[-300:])}
  return json.loads(result.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--lengths", default="512,2048,8192")
  parser.add_argument("--chunk_size", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--long_repeats", type=int, default=2,
                      help="repeats at lengths above 4096")
  parser.add_argument("--full_8192_min_free_gb", type=float, default=16.0)
  parser.add_argument("--output", default=os.path.join(HERE, "long_inputs.md"))
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  lengths = [int(x) for x in args.lengths.split(",")]
  if args.child:
    measure(lengths[0], args.chunk_size, args.repeats)
    return

  rows = []
  for length in lengths:
    repeats = args.repeats if length <= 4096 else args.long_repeats
    pair = {}
    for label, chunk in (("full", 0), ("chunked", args.chunk_size)):
      if (label == "full" and length > 4096 and
          available_gb() < args.full_8192_min_free_gb):
        pair[label] = {"error": "skipped: %.1f GB available < %.1f GB" %
                                (available_gb(), args.full_8192_min_free_gb)}
      else:
        pair[label] = run_child(length, chunk, repeats)
      print(length, label, json.dumps(pair[label]), flush=True)
    rows.append((length, pair))

  def cell(result):
    """(time, peak) strings of one measurement, or ("-", why not)."""
    if "error" in result:
      return "-", result["error"]
    return ("%.2f" % statistics.median(result["seconds"]),
            "%.2f" % result["peak_rss_gb"])

  lines = [
      "# Long inputs: full vs query-chunked attention",
      "",
      "`PYTHONPATH=. python bench/long_inputs.py` on this machine (2 cores, "
      "shared; 24 GB). BERT-base shape (12 layers, 768 hidden, 12 heads, "
      "intermediate 3072) with hierarchical positions (alpha 0.4, 512 "
      "learned rows), batch 1, inference in a `tf.function`; chunks of %d "
      "queries. Each cell is its own subprocess; time is the median of its "
      "runs, peak is the process's maximum RSS (the model alone: about "
      "%.2f GB). Other jobs share the cores, so the times are noisy; the "
      "peaks are not." % (args.chunk_size, next(
          (r["model_rss_gb"] for _, p in rows for r in p.values()
           if "model_rss_gb" in r), float("nan"))),
      "",
      "| tokens | full: time (s) | full: peak RSS (GB) | chunked: time (s) | "
      "chunked: peak RSS (GB) | time chunked / full | peak chunked / full |",
      "|---|---|---|---|---|---|---|",
  ]
  for length, pair in rows:
    full, chunked = cell(pair["full"]), cell(pair["chunked"])
    ratios = ["-", "-"]
    if "-" not in (full[0], chunked[0]):
      ratios = ["%.2f" % (float(c) / float(f)) for c, f in zip(chunked, full)]
    lines.append("| %d | %s | %s | %s | %s | %s | %s |" % (
        (length,) + full + chunked + tuple(ratios)))
  lines.append("")
  with open(args.output, "w") as writer:
    writer.write("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
