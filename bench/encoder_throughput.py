"""Encoder throughput: bert_tf's BertModel against keras-hub and Model Garden.

The same configuration for every implementation, forward pass and training step
(the same loss: mean square of the sequence output plus the pooled output's;
the same optimizer: Adam, lr 1e-4), in float32, mixed_bfloat16 and float32 with
XLA. Rounds interleave the implementations so that the machine's noise hits all
of them alike; the report gives each one's median tokens/s, its ratio to the
best peer setting, and model FLOPs utilization against the matmul peak.

Usage:
  python bench/encoder_throughput.py --shapes small --rounds 5 --steps 5
  python bench/encoder_throughput.py --shapes base --modes forward,train
"""

import argparse
import gc
import statistics
import time

import numpy as np
import tensorflow as tf

SHAPES = {
    # name: (layers, hidden, heads, intermediate, seq_length, batch)
    "small": (4, 256, 4, 1024, 128, 16),
    "base": (12, 768, 12, 3072, 128, 8),
}
VOCAB = 30522
SETTINGS = ("float32", "mixed_bfloat16", "xla")
IMPLEMENTATIONS = ("bert_tf", "keras_hub", "model_garden")


def _set_policy(implementation, setting):
  """Sets the global dtype policy of the implementation's Keras."""
  policy = "mixed_bfloat16" if setting == "mixed_bfloat16" else "float32"
  if implementation == "model_garden":
    import tf_keras  # pylint: disable=g-import-not-at-top
    tf_keras.mixed_precision.set_global_policy(policy)
  else:
    import keras  # pylint: disable=g-import-not-at-top
    keras.mixed_precision.set_global_policy(policy)


def build(implementation, shape):
  """Builds an encoder and a function (ids, mask, types) -> (sequence, pooled)."""
  layers, hidden, heads, inter, _, _ = shape
  if implementation == "bert_tf":
    from bert_tf.modeling import BertConfig, BertModel  # pylint: disable=g-import-not-at-top
    model = BertModel(BertConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=inter,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        type_vocab_size=2))

    def run(ids, mask, types, training):
      out = model({"input_ids": ids, "input_mask": mask, "segment_ids": types},
                  training=training)
      return out["sequence_output"], out["pooled_output"]
    return model, run
  if implementation == "keras_hub":
    import keras_hub  # pylint: disable=g-import-not-at-top
    model = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=inter, dropout=0.0)

    def run(ids, mask, types, training):
      out = model({"token_ids": ids, "padding_mask": mask,
                   "segment_ids": types}, training=training)
      return out["sequence_output"], out["pooled_output"]
    return model, run
  from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top
  model = networks.BertEncoderV2(
      vocab_size=VOCAB, hidden_size=hidden, num_layers=layers,
      num_attention_heads=heads, inner_dim=inter, type_vocab_size=2,
      output_dropout=0.0, attention_dropout=0.0)

  def run(ids, mask, types, training):
    out = model({"input_word_ids": ids, "input_mask": mask,
                 "input_type_ids": types}, training=training)
    return out["sequence_output"], out["pooled_output"]
  return model, run


def make_steps(implementation, model, run, setting):
  """Returns (forward_step, train_step) tf.functions over one batch."""
  jit = setting == "xla"
  if implementation == "model_garden":
    import tf_keras  # pylint: disable=g-import-not-at-top
    optimizer = tf_keras.optimizers.Adam(1e-4)
    if setting == "mixed_bfloat16":
      pass  # bfloat16 needs no loss scaling
  else:
    import keras  # pylint: disable=g-import-not-at-top
    optimizer = keras.optimizers.Adam(1e-4)

  @tf.function(jit_compile=jit)
  def forward(ids, mask, types):
    seq, pooled = run(ids, mask, types, False)
    return tf.reduce_sum(tf.cast(pooled, tf.float32)) + tf.reduce_sum(
        tf.cast(seq[:, 0], tf.float32))

  @tf.function(jit_compile=jit)
  def train(ids, mask, types):
    with tf.GradientTape() as tape:
      seq, pooled = run(ids, mask, types, True)
      loss = (tf.reduce_mean(tf.square(tf.cast(seq, tf.float32))) +
              tf.reduce_mean(tf.square(tf.cast(pooled, tf.float32))))
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return forward, train


def flops_per_token(shape):
  """Matmul FLOPs of one forward pass per token (embeddings excluded)."""
  layers, hidden, _, inter, seq, _ = shape
  per_layer = 2 * (4 * hidden * hidden + 2 * hidden * inter) + 4 * seq * hidden
  return layers * per_layer


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--shapes", default="small")
  parser.add_argument("--settings", default=",".join(SETTINGS))
  parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
  parser.add_argument("--modes", default="forward,train")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--peak_float32", type=float, default=None,
                      help="GFLOP/s; measured with bench/matmul_peak.py if unset")
  parser.add_argument("--peak_bfloat16", type=float, default=None)
  args = parser.parse_args()

  import matmul_peak  # pylint: disable=g-import-not-at-top
  peaks = {
      "float32": args.peak_float32 or matmul_peak.matmul_peak(tf.float32),
      "bfloat16": args.peak_bfloat16 or matmul_peak.matmul_peak(tf.bfloat16),
  }
  print("matmul peak: float32 %.0f GFLOP/s, bfloat16 %.0f GFLOP/s" %
        (peaks["float32"], peaks["bfloat16"]))

  for shape_name in args.shapes.split(","):
    shape = SHAPES[shape_name]
    _, _, _, _, seq, batch = shape
    rng = np.random.RandomState(0)
    ids = tf.constant(rng.randint(1, VOCAB, [batch, seq]), tf.int32)
    mask = tf.ones([batch, seq], tf.int32)
    types = tf.constant(rng.randint(0, 2, [batch, seq]), tf.int32)
    for mode in args.modes.split(","):
      runs = {}
      for implementation in args.implementations.split(","):
        for setting in args.settings.split(","):
          _set_policy(implementation, setting)
          model, run = build(implementation, shape)
          forward, train = make_steps(implementation, model, run, setting)
          step = forward if mode == "forward" else train
          step(ids, mask, types)  # trace and warm up
          step(ids, mask, types)
          runs[(implementation, setting)] = (model, step)
          _set_policy(implementation, "float32")
      samples = {key: [] for key in runs}
      for _ in range(args.rounds):
        for key, (_, step) in runs.items():
          start = time.perf_counter()
          for _ in range(args.steps):
            result = step(ids, mask, types)
          float(result)
          elapsed = time.perf_counter() - start
          samples[key].append(batch * seq * args.steps / elapsed)
      medians = {key: statistics.median(v) for key, v in samples.items()}
      best_peer = max(v for (impl, _), v in medians.items()
                      if impl != "bert_tf") if any(
                          impl != "bert_tf" for impl, _ in medians) else None
      flops = flops_per_token(shape) * (1 if mode == "forward" else 3)
      print("\n== %s, %s (batch %d x %d tokens), median of %d rounds x %d steps"
            % (shape_name, mode, batch, seq, args.rounds, args.steps))
      print("%-14s %-15s %12s %10s %8s" % ("implementation", "setting",
                                          "tokens/s", "vs best", "MFU"))
      for (impl, setting), value in sorted(medians.items(),
                                           key=lambda kv: -kv[1]):
        peak = peaks["bfloat16" if setting == "mixed_bfloat16" else "float32"]
        ratio = "%.2fx" % (value / best_peer) if best_peer else "-"
        print("%-14s %-15s %12.0f %10s %7.1f%%" % (
            impl, setting, value, ratio, 100 * value * flops / 1e9 / peak))
      runs.clear()
      gc.collect()


if __name__ == "__main__":
  main()
