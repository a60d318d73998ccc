"""Long inputs: time and peak memory of full vs query-chunked attention.

Two encoders with hierarchical positions (512 learned rows extended by
`hierarchical_position_alpha` 0.4, 30,522 words), random weights (same shapes,
same work as a checkpoint):
- `base`: BERT-base (12 layers, hidden 768, 12 heads, intermediate 3072);
- `small`: 4 layers, hidden 256, 4 heads, intermediate 1024.

Each is measured on one sequence (batch 1) of every `--lengths`, with full
attention (`attention_chunk_size` null) and with query chunks of
`--chunk_size`, in two modes:
- `inference`: the encoder's forward pass (`training=False`);
- `training`: one pretraining step of `BertPretrainer` (masked LM on 20
  positions + next sentence, dropout on), forward, backward and the original
  optimizer's update (`create_optimizer`: AdamWeightDecay, clipping).

Every measurement runs in a fresh subprocess, so its peak RSS (`ru_maxrss`)
is that measurement's alone. In each subprocess the step is traced once as a
`tf.function` with a dynamic length (on a 32-token input), then timed on the
long input `--repeats` times (once above 4,096 tokens); the median is
reported. Full attention keeps [heads, length, length] float32 tensors per
layer; a full-attention cell whose estimate of those (probabilities and
logits in inference; probabilities, dropout mask and dropped probabilities
of every layer kept for the gradient in training) exceeds the memory
available is skipped and says so.

Usage:
  PYTHONPATH=. python bench/long_inputs.py            # writes bench/long_inputs.md
  PYTHONPATH=. python bench/long_inputs.py --models small --modes training \\
      --lengths 1024,6144 --output /tmp/long.md
  PYTHONPATH=. python bench/long_inputs.py --attention chunked ...  # one column
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

MODELS = {
    "base": {"hidden_size": 768, "num_hidden_layers": 12,
             "num_attention_heads": 12, "intermediate_size": 3072},
    "small": {"hidden_size": 256, "num_hidden_layers": 4,
              "num_attention_heads": 4, "intermediate_size": 1024},
}
MODES = ("inference", "training")
MAX_PREDICTIONS = 20


def peak_rss_gb():
  """The process's maximum resident set size so far, in GB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def measure(model_name, mode, length, chunk_size, repeats):
  """Runs in the subprocess: one measurement; prints one JSON line."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_tf.modeling import BertConfig  # pylint: disable=g-import-not-at-top
  from bert_tf.modeling import BertModel  # pylint: disable=g-import-not-at-top
  from bert_tf.tasks import pretraining  # pylint: disable=g-import-not-at-top
  from bert_tf.training import optimization  # pylint: disable=g-import-not-at-top

  config = BertConfig.from_dict(dict(
      MODELS[model_name], vocab_size=30522, max_position_embeddings=512,
      type_vocab_size=2, hierarchical_position_alpha=0.4,
      attention_chunk_size=chunk_size or None))
  rng = np.random.RandomState(0)

  def features(length):
    """A batch of one pretraining example of `length` tokens."""
    return {
        "input_ids": rng.randint(0, config.vocab_size, [1, length], np.int32),
        "input_mask": np.ones([1, length], np.int32),
        "segment_ids": np.zeros([1, length], np.int32),
        "masked_lm_positions": np.sort(rng.choice(
            length, MAX_PREDICTIONS, replace=False))[None].astype(np.int32),
        "masked_lm_ids": rng.randint(0, config.vocab_size,
                                     [1, MAX_PREDICTIONS], np.int32),
        "masked_lm_weights": np.ones([1, MAX_PREDICTIONS], np.float32),
        "next_sentence_labels": np.zeros([1, 1], np.int32),
    }

  sequence = tf.TensorSpec([1, None], tf.int32)
  predictions = tf.TensorSpec([1, MAX_PREDICTIONS], tf.int32)
  signature = [{
      "input_ids": sequence, "input_mask": sequence, "segment_ids": sequence,
      "masked_lm_positions": predictions, "masked_lm_ids": predictions,
      "masked_lm_weights": tf.TensorSpec([1, MAX_PREDICTIONS], tf.float32),
      "next_sentence_labels": tf.TensorSpec([1, 1], tf.int32)}]
  if mode == "inference":
    encoder = BertModel(config)

    @tf.function(input_signature=signature)
    def step(batch):
      return encoder(batch, training=False)["sequence_output"]
  else:
    model = pretraining.model_fn(config)()
    optimizer = optimization.create_optimizer(1e-4, 10000, 100)
    optimizer.build(model.trainable_variables)
    global_step = tf.Variable(0, dtype=tf.int64, trainable=False)

    @tf.function(input_signature=signature)
    def step(batch):
      with tf.GradientTape() as tape:
        loss, _ = pretraining.loss_fn(model, batch, training=True)
      grads = tape.gradient(loss, model.trainable_variables)
      optimizer.apply_gradients(zip(grads, model.trainable_variables),
                                global_step)
      global_step.assign_add(1)
      return loss

  step(features(32))  # trace once
  rss_before = peak_rss_gb()
  batch = features(length)
  seconds = []
  for _ in range(repeats):
    began = time.perf_counter()
    output = step(batch).numpy()
    seconds.append(time.perf_counter() - began)
  assert np.isfinite(output).all()
  print(json.dumps({"seconds": seconds, "model_rss_gb": rss_before,
                    "peak_rss_gb": peak_rss_gb()}))


def available_gb():
  """MemAvailable from /proc/meminfo, in GB."""
  with open("/proc/meminfo") as meminfo:
    for line in meminfo:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) / 2 ** 20
  return 0.0


def full_attention_gb(model_name, mode, length):
  """Estimated GB of full attention's [heads, length, length] tensors.

  Inference holds one layer's logits and probabilities at a time; training
  keeps every layer's probabilities, dropout mask and dropped probabilities
  for the gradient.
  """
  model = MODELS[model_name]
  square_gb = model["num_attention_heads"] * length ** 2 * 4 / 2 ** 30
  if mode == "inference":
    return 2 * square_gb
  return 3 * model["num_hidden_layers"] * square_gb


def run_child(model_name, mode, length, chunk_size, repeats):
  """Runs one measurement in a subprocess; returns its JSON result."""
  command = [sys.executable, os.path.abspath(__file__), "--child",
             "--models", model_name, "--modes", mode, "--lengths",
             str(length), "--chunk_size", str(chunk_size), "--repeats",
             str(repeats)]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    return {"error": "exit %d: %s" % (result.returncode,
                                      result.stderr.strip()[-300:])}
  return json.loads(result.stdout.strip().splitlines()[-1])


def cell(result):
  """(time, peak) strings of one measurement, or ("-", why not)."""
  if "error" in result:
    return "-", result["error"]
  return ("%.2f" % statistics.median(result["seconds"]),
          "%.2f" % result["peak_rss_gb"])


def table(rows):
  """Markdown table lines of [(length, {"full": result, "chunked": result})]."""
  lines = [
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
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="small,base")
  parser.add_argument("--modes", default="inference,training")
  parser.add_argument("--lengths", default="1024,2048,4096,6144,8192")
  parser.add_argument("--chunk_size", type=int, default=512)
  parser.add_argument("--attention", default="full,chunked",
                      help="the columns to measure: full and/or chunked")
  parser.add_argument("--repeats", type=int, default=3,
                      help="timed runs per cell up to 4,096 tokens (then 1)")
  parser.add_argument("--output", default=os.path.join(HERE, "long_inputs.md"))
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  models, modes = args.models.split(","), args.modes.split(",")
  lengths = [int(x) for x in args.lengths.split(",")]
  if args.child:
    measure(models[0], modes[0], lengths[0], args.chunk_size, args.repeats)
    return

  sections = []
  for model_name in models:
    for mode in modes:
      rows = []
      for length in lengths:
        repeats = args.repeats if length <= 4096 else 1
        pair = {}
        for label, chunk in (("full", 0), ("chunked", args.chunk_size)):
          if label not in args.attention.split(","):
            pair[label] = {"error": "not measured"}
            continue
          need = full_attention_gb(model_name, mode, length)
          if label == "full" and need > available_gb():
            pair[label] = {"error": "skipped: full attention needs about "
                                    "%.0f GB, %.1f GB available" %
                                    (need, available_gb())}
          else:
            pair[label] = run_child(model_name, mode, length, chunk, repeats)
          print(model_name, mode, length, label, json.dumps(pair[label]),
                flush=True)
        rows.append((length, pair))
      sections.append((model_name, mode, rows))

  lines = [
      "# Long inputs: full vs query-chunked attention",
      "",
      "`PYTHONPATH=. python bench/long_inputs.py --models %s --modes %s "
      "--lengths %s --chunk_size %d` (see its docstring). Batch 1, "
      "hierarchical positions (alpha 0.4, 512 learned rows), chunks of %d "
      "queries, every cell its own subprocess; time is the median of its "
      "runs, peak the process's maximum RSS. Other jobs share the cores, so "
      "the times are noisy; the peaks are not." % (
          args.models, args.modes, args.lengths, args.chunk_size,
          args.chunk_size),
  ]
  for model_name, mode, rows in sections:
    model_rss = next((r["model_rss_gb"] for _, p in rows for r in p.values()
                      if "model_rss_gb" in r), float("nan"))
    lines += ["", "## %s, %s" % (model_name, mode), "",
              "%s; the process after tracing (model%s): %.2f GB." % (
                  ", ".join("%s %d" % (k, v) for k, v in
                            MODELS[model_name].items()),
                  " and optimizer slots" if mode == "training" else "",
                  model_rss), ""]
    lines += table(rows)
  lines.append("")
  with open(args.output, "w") as writer:
    writer.write("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
