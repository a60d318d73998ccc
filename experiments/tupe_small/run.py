"""A small-scale TUPE reproduction: learned absolute positions vs TUPE-A vs TUPE-R.

Pretrains three tiny BERTs (masked LM only) that differ only in the position
option of their config, on identical data with identical seeds and budget, and
records the validation masked-LM loss along the way. Writes, beside this file:

- `loss_curves.png`: validation MLM loss against training steps;
- `results.md`: the setup, the final losses, and at which fraction of the
  baseline's steps each TUPE variant first reaches the baseline's final
  validation loss (the paper reports about 30% for TUPE at BERT-base scale);
- `curves.json`: the raw curves.

Data: WikiText-2 from `../shared/fixtures/corpora` (`wikitext2_test.tokens` to
train, `wikitext2_valid.tokens` to validate), tokenized with the uncased
WordPiece vocabulary by `bert_tf.tokenization.FullTokenizer`, cut into
sequences of `[CLS]` + 126 tokens + `[SEP]`, masked once (static masking, 15%,
80/10/10, as the original) with a fixed seed. The WordPiece ids are renumbered
to the ids that occur in the corpus, which keeps the output softmax small; the
tokens are the same.

Usage (about 20 minutes on 2 busy CPU cores):
  PYTHONPATH=. python experiments/tupe_small/run.py [--steps 800]
"""

import argparse
import json
import os
import random
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # pylint: disable=g-import-not-at-top
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.modeling import BertConfig
from bert_tf.modeling import BertModel
from bert_tf.modeling import heads
from bert_tf.tasks import pretraining

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")

SEQ_LENGTH = 128
MAX_PREDICTIONS = 20
MASK_PROB = 0.15

VARIANTS = (
    ("learned absolute (BERT)", {}),
    ("TUPE-A", {"tupe": "absolute"}),
    ("TUPE-R", {"tupe": "relative"}),
)


def read_ids(path, tokenizer):
  """Tokenizes a WikiText file (one paragraph per line) into one id list."""
  with open(path, encoding="utf-8") as reader:
    lines = [line.strip() for line in reader]
  tokens = []
  for line in lines:
    if line and not line.startswith("="):  # skip blank lines and headings
      tokens.extend(tokenizer.tokenize(line))
  return tokenizer.convert_tokens_to_ids(tokens)


def make_instances(ids, specials, vocab_size, rng):
  """Cuts `ids` into [CLS] x [SEP] sequences and masks them (80/10/10).

  Args:
    ids: list of (compact) token ids.
    specials: dict with the compact ids of "[CLS]", "[SEP]", "[MASK]".
    vocab_size: compact vocabulary size (random replacements draw from it).
    rng: `random.Random`.

  Returns:
    dict of int32 arrays: input_ids [n, SEQ_LENGTH], masked_lm_positions,
    masked_lm_ids [n, MAX_PREDICTIONS] and float32 masked_lm_weights.
  """
  body = SEQ_LENGTH - 2
  count = len(ids) // body
  arrays = {
      "input_ids": np.zeros([count, SEQ_LENGTH], np.int32),
      "masked_lm_positions": np.zeros([count, MAX_PREDICTIONS], np.int32),
      "masked_lm_ids": np.zeros([count, MAX_PREDICTIONS], np.int32),
      "masked_lm_weights": np.zeros([count, MAX_PREDICTIONS], np.float32),
  }
  for row in range(count):
    tokens = ([specials["[CLS]"]] + ids[row * body:(row + 1) * body] +
              [specials["[SEP]"]])
    candidates = list(range(1, SEQ_LENGTH - 1))
    rng.shuffle(candidates)
    num_to_mask = min(MAX_PREDICTIONS,
                      max(1, int(round(len(candidates) * MASK_PROB))))
    positions = sorted(candidates[:num_to_mask])
    labels = [tokens[p] for p in positions]
    for p in positions:
      draw = rng.random()
      if draw < 0.8:
        tokens[p] = specials["[MASK]"]
      elif draw >= 0.9:
        tokens[p] = rng.randint(0, vocab_size - 1)
    arrays["input_ids"][row] = tokens
    arrays["masked_lm_positions"][row, :num_to_mask] = positions
    arrays["masked_lm_ids"][row, :num_to_mask] = labels
    arrays["masked_lm_weights"][row, :num_to_mask] = 1.0
  return arrays


def load_data(seed):
  """Train and validation instances with a compact vocabulary, and its size."""
  tokenizer = tokenization.FullTokenizer(
      os.path.join(FIXTURES, "vocab", "uncased_vocab.txt"), do_lower_case=True)
  corpora = os.path.join(FIXTURES, "corpora")
  train = read_ids(os.path.join(corpora, "wikitext2_test.tokens"), tokenizer)
  valid = read_ids(os.path.join(corpora, "wikitext2_valid.tokens"), tokenizer)
  special_ids = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", "[MASK]"])
  used = sorted(set(train) | set(valid) | set(special_ids))
  compact = {old: new for new, old in enumerate(used)}
  specials = {name: compact[i]
              for name, i in zip(("[CLS]", "[SEP]", "[MASK]"), special_ids)}
  rng = random.Random(seed)
  train = make_instances([compact[i] for i in train], specials, len(used), rng)
  valid = make_instances([compact[i] for i in valid], specials, len(used), rng)
  return train, valid, len(used)


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warmup over the first 10% of the steps, then linear decay to 0."""

  def __init__(self, peak, total_steps):
    self.peak = peak
    self.total_steps = total_steps
    self.warmup_steps = max(1, int(0.1 * total_steps))

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warmup = self.peak * step / self.warmup_steps
    decay = self.peak * (self.total_steps - step) / (
        self.total_steps - self.warmup_steps)
    return tf.maximum(0.0, tf.where(step < self.warmup_steps, warmup, decay))

  def get_config(self):
    return {"peak": self.peak, "total_steps": self.total_steps}


def pretrain(name, extra, train, valid, vocab_size, args):
  """Trains one variant; returns (eval steps, validation losses, seconds)."""
  keras.utils.set_random_seed(args.seed)
  config = BertConfig.from_dict(dict({
      "vocab_size": vocab_size, "hidden_size": 128, "num_hidden_layers": 2,
      "num_attention_heads": 2, "intermediate_size": 512,
      "max_position_embeddings": SEQ_LENGTH, "type_vocab_size": 2}, **extra))
  model = BertModel(config)
  head = heads.MaskedLMHead(config, model.get_embedding_table())
  head.build()
  # The pooler gets no gradient from the masked LM: leave it out.
  variables = [v for v in model.trainable_variables + head.trainable_variables
               if "/pooler/" not in v.path]
  optimizer = keras.optimizers.AdamW(
      learning_rate=WarmupLinearDecay(args.learning_rate, args.steps),
      weight_decay=0.01, epsilon=1e-6,
      global_clipnorm=1.0)
  optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])

  def loss_of(batch, training):
    output = model({"input_ids": batch["input_ids"]}, training=training)
    log_probs = head(output["sequence_output"], batch["masked_lm_positions"])
    loss, _ = pretraining.masked_lm_loss(log_probs, batch["masked_lm_ids"],
                                         batch["masked_lm_weights"])
    return loss

  @tf.function(jit_compile=False)
  def train_step(batch):
    with tf.GradientTape() as tape:
      loss = loss_of(batch, True)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  @tf.function
  def eval_step(batch):
    weights = tf.reduce_sum(batch["masked_lm_weights"])
    return loss_of(batch, False) * weights, weights

  def evaluate():
    total = count = 0.0
    for start in range(0, len(valid["input_ids"]), 128):
      batch = {k: v[start:start + 128] for k, v in valid.items()}
      loss_sum, weights = eval_step(batch)
      total += float(loss_sum)
      count += float(weights)
    return total / count

  order = np.random.RandomState(args.seed)
  steps, losses = [0], [evaluate()]
  began = time.time()
  for step in range(1, args.steps + 1):
    rows = order.randint(0, len(train["input_ids"]), args.batch_size)
    train_step({k: v[rows] for k, v in train.items()})
    if step % args.eval_every == 0 or step == args.steps:
      steps.append(step)
      losses.append(evaluate())
      print("%-24s step %5d  valid MLM loss %.4f  (%.0fs)" %
            (name, step, losses[-1], time.time() - began), flush=True)
  return steps, losses, time.time() - began


def first_step_reaching(steps, losses, target):
  """The first evaluated step whose loss is <= target, or None."""
  for step, loss in zip(steps, losses):
    if loss <= target:
      return step
  return None


def fraction_cell(curve, target, total_steps):
  """'step (fraction of total_steps)' where `curve` first reaches `target`."""
  step = first_step_reaching(curve["steps"], curve["losses"], target)
  if step is None:
    return "not reached"
  return "%d (%.0f%%)" % (step, 100.0 * step / total_steps)


def write_results(run, output_dir):
  """Writes curves.json, loss_curves.png and results.md into `output_dir`.

  Args:
    run: dict with "settings" (the flags and data sizes) and "curves" (name ->
      {"steps", "losses", "seconds"}), as saved in curves.json.
    output_dir: directory to write to.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  settings, curves = run["settings"], run["curves"]
  with open(os.path.join(output_dir, "curves.json"), "w") as writer:
    json.dump(run, writer, indent=1)
  figure, axis = pyplot.subplots(figsize=(7, 4.5))
  for name, curve in curves.items():
    axis.plot(curve["steps"][1:], curve["losses"][1:], label=name)
  baseline = curves[VARIANTS[0][0]]
  axis.axhline(baseline["losses"][-1], color="gray", linestyle=":",
               label="baseline final loss")
  axis.set_xlabel("training step (batch %d, seq %d)" %
                  (settings["batch_size"], SEQ_LENGTH))
  axis.set_ylabel("validation masked-LM loss")
  axis.set_title("Tiny BERT on WikiText-2: positions (2 layers, hidden 128)")
  axis.grid(alpha=0.3)
  axis.legend()
  figure.tight_layout()
  figure.savefig(os.path.join(output_dir, "loss_curves.png"), dpi=110)

  total = settings["steps"]
  final, best = baseline["losses"][-1], min(baseline["losses"])
  lines = [
      "# TUPE, small scale: validation MLM loss",
      "",
      "Regenerate with `PYTHONPATH=. python experiments/tupe_small/run.py "
      "--steps %d --eval_every %d --seed %d` (writes this file, "
      "`loss_curves.png` and `curves.json`)." %
      (total, settings["eval_every"], settings["seed"]),
      "",
      "Setup: 2 layers, hidden 128, 2 heads, intermediate 512, sequence %d, "
      "batch %d, %d steps, AdamW (lr %g, 10%% warmup, linear decay, weight "
      "decay 0.01, clip 1.0), dropout 0.1, seed %d for all three. Data: "
      "WikiText-2 test (%d sequences) to train, the first %d sequences of "
      "valid to validate; uncased WordPiece, %d distinct ids; static masking "
      "15%% (at most %d per sequence), 80/10/10. Validation every %d steps." %
      (SEQ_LENGTH, settings["batch_size"], total, settings["learning_rate"],
       settings["seed"], settings["num_train"], settings["num_valid"],
       settings["vocab_size"], MAX_PREDICTIONS, settings["eval_every"]),
      "",
      "Step (and fraction of the baseline's %d steps) at which each model "
      "first reaches the baseline's final validation loss (%.4f) and its best "
      "one (%.4f):" % (total, final, best),
      "",
      "| positions | final loss | best loss | reaches baseline final | "
      "reaches baseline best | train time |",
      "|---|---|---|---|---|---|",
  ]
  for name, curve in curves.items():
    lines.append("| %s | %.4f | %.4f | %s | %s | %.0f s |" % (
        name, curve["losses"][-1], min(curve["losses"]),
        fraction_cell(curve, final, total), fraction_cell(curve, best, total),
        curve["seconds"]))
  lines += ["", "![validation loss](loss_curves.png)", ""]
  with open(os.path.join(output_dir, "results.md"), "w") as writer:
    writer.write("\n".join(lines))
  print("\n".join(lines))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=800)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--learning_rate", type=float, default=1e-3)
  parser.add_argument("--eval_every", type=int, default=40)
  parser.add_argument("--num_valid", type=int, default=512,
                      help="validation sequences (the first ones) to score")
  parser.add_argument("--seed", type=int, default=12345)
  parser.add_argument("--output_dir", default=HERE)
  parser.add_argument("--from_curves", default=None,
                      help="a curves.json to redraw the plot and table from, "
                      "without training")
  args = parser.parse_args()
  if args.from_curves:
    with open(args.from_curves) as reader:
      write_results(json.load(reader), args.output_dir)
    return
  train, valid, vocab_size = load_data(args.seed)
  valid = {k: v[:args.num_valid] for k, v in valid.items()}
  print("train %d, valid %d sequences, %d ids" %
        (len(train["input_ids"]), len(valid["input_ids"]), vocab_size))
  settings = dict(vars(args), vocab_size=vocab_size,
                  num_train=len(train["input_ids"]),
                  num_valid=len(valid["input_ids"]))
  curves = {}
  for name, extra in VARIANTS:
    steps, losses, seconds = pretrain(name, extra, train, valid, vocab_size,
                                      args)
    curves[name] = {"steps": steps, "losses": losses, "seconds": seconds}
  write_results({"settings": settings, "curves": curves}, args.output_dir)


if __name__ == "__main__":
  main()
