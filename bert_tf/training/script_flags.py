"""absl flags shared by the training scripts, and the set-up they drive.

`run_pretraining.py`, `run_classifier.py` and `run_squad.py` take the original
TPU flags and the same new ones (strategy, dtype, XLA, checkpoints kept, log
frequency, seed); the two fine-tuning scripts also share the original training
flags. They are defined here once; each script calls the `define_*` functions
it needs and `flags.adopt_module_key_flags(script_flags)` so that its
`--helpshort` lists them.
"""

from absl import flags
from absl import logging
import keras
import tensorflow as tf

from bert_tf.training import distribution
from bert_tf.training import trainer as trainer_lib

FLAGS = flags.FLAGS


# Flags of the original scripts that several root scripts share, with the
# originals' defaults and help texts: (define function, default, help).
_MODEL_FLAGS = {
    "bert_config_file": (
        flags.DEFINE_string, None,
        "The config json file corresponding to the pre-trained BERT model (or "
        "an ALBERT albert_config.json). This specifies the model "
        "architecture."),
    "init_checkpoint": (
        flags.DEFINE_string, None,
        "Initial checkpoint (usually from a pre-trained BERT model): a TF1 "
        "checkpoint, this project's, or a directory convert_checkpoint.py "
        "reads."),
    "output_dir": (
        flags.DEFINE_string, None,
        "The output directory where the model checkpoints will be written."),
    "vocab_file": (
        flags.DEFINE_string, None,
        "The vocabulary file that the BERT model was trained on."),
    "spm_model_file": (
        flags.DEFINE_string, None,
        "The model file for SentencePiece tokenization (ALBERT), instead of "
        "--vocab_file."),
    "do_lower_case": (
        flags.DEFINE_bool, True,
        "Whether to lower case the input text. Should be True for uncased "
        "models and False for cased models."),
}


def define_model_flags(*names):
  """Defines the named original flags of `_MODEL_FLAGS` (once per process).

  `bert_config_file` comes with ALBERT's alias `albert_config_file`.

  Args:
    *names: flag names, keys of `_MODEL_FLAGS`.
  """
  for name in names:
    if name in FLAGS:
      continue
    define, default, help_text = _MODEL_FLAGS[name]
    define(name, default, help_text)
    if name == "bert_config_file":
      flags.DEFINE_alias("albert_config_file", "bert_config_file")


def define_tpu_flags():
  """Defines the original scripts' TPU flags (once per process)."""
  if "use_tpu" in FLAGS:
    return
  flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")
  flags.DEFINE_string(
      "tpu_name", None,
      "The Cloud TPU to use for training: a name or a grpc://ip.address.")
  flags.DEFINE_string(
      "tpu_zone", None,
      "[Optional] GCE zone where the Cloud TPU is located in.")
  flags.DEFINE_string(
      "gcp_project", None,
      "[Optional] Project name for the Cloud TPU-enabled project.")
  flags.DEFINE_string("master", None, "[Optional] TensorFlow master URL.")
  flags.DEFINE_integer(
      "num_tpu_cores", 8,
      "Only used if `use_tpu` is True. Total number of TPU cores to use.")


def define_finetuning_flags():
  """Defines the original fine-tuning flags shared by run_classifier/run_squad."""
  if "num_train_epochs" in FLAGS:
    return
  flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
  flags.DEFINE_float("learning_rate", 5e-5,
                     "The initial learning rate for Adam.")
  flags.DEFINE_float("num_train_epochs", 3.0,
                     "Total number of training epochs to perform.")
  flags.DEFINE_float(
      "warmup_proportion", 0.1,
      "Proportion of training to perform linear learning rate warmup for. "
      "E.g., 0.1 = 10% of training.")
  flags.DEFINE_integer("save_checkpoints_steps", 1000,
                       "How often to save the model checkpoint.")
  flags.DEFINE_integer("iterations_per_loop", 1000,
                       "How many steps to make in each estimator call.")


def define_training_flags():
  """Defines the new training flags (once per process)."""
  if "distribution_strategy" in FLAGS:
    return
  flags.DEFINE_enum(
      "distribution_strategy", None, list(distribution.STRATEGIES),
      "tf.distribute strategy; default: tpu with --use_tpu, mirrored with "
      "more than one GPU, else one_device. mirrored without GPUs uses every "
      "logical CPU device.")
  flags.DEFINE_integer("num_gpus", None,
                       "GPUs to use (default: all visible ones).")
  flags.DEFINE_enum(
      "dtype", "float32", list(trainer_lib.DTYPES),
      "Compute dtype: float32, bfloat16 (mixed, float32 variables) or "
      "float16 (mixed, with dynamic loss scaling).")
  flags.DEFINE_bool("enable_xla", False,
                    "Compile the forward and backward pass with XLA.")
  flags.DEFINE_integer("keep_checkpoint_max", 5,
                       "Checkpoints to keep in output_dir (0: all).")
  flags.DEFINE_integer(
      "log_steps", 100,
      "Log a line and summaries every this many steps (loops end there too).")
  flags.DEFINE_integer(
      "seed", None,
      "Seed of the data order, masks, initialization and dropout.")


def define_export_flags():
  """Defines `--export_dir` of the fine-tuning scripts (once per process)."""
  if "export_dir" in FLAGS:
    return
  flags.DEFINE_string(
      "export_dir", None,
      "If set, export the final model there as a SavedModel serving ids, "
      "tf.Examples and raw text (see export_saved_model.py); the directory "
      "must be empty or absent.")


def define_dynamic_padding_flag():
  """Defines `--dynamic_padding` (once per process)."""
  if "dynamic_padding" in FLAGS:
    return
  flags.DEFINE_bool(
      "dynamic_padding", True,
      "Batch examples of similar lengths (sorted within windows of 8 "
      "batches, reproducibly from --seed) and cut each batch to its longest "
      "example rounded up to a multiple of 8, instead of padding every "
      "example to --max_seq_length; the same outputs, in input order. "
      "--nodynamic_padding keeps the fixed shapes; so does a TPU.")


def dynamic_padding(strategy=None):
  """Whether to use dynamic padding: `--dynamic_padding`, but never on TPU.

  Args:
    strategy: the run's `tf.distribute.Strategy`, or None.

  Returns:
    bool.
  """
  if not FLAGS.dynamic_padding:
    return False
  if isinstance(strategy, (tf.distribute.TPUStrategy,
                           tf.distribute.experimental.TPUStrategy)):
    logging.info("--dynamic_padding is off on TPU: XLA compiles a program "
                 "for each input shape, so batches keep the fixed shape "
                 "[batch, --max_seq_length]")
    return False
  return True


def strategy_from_flags():
  """Creates the strategy, then sets the dtype policy and the seed.

  Call it before any other TensorFlow op (multi_worker_mirrored needs that).

  Returns:
    The `tf.distribute.Strategy` the flags ask for.
  """
  strategy = distribution.get_strategy(
      FLAGS.distribution_strategy, FLAGS.num_gpus, FLAGS.use_tpu,
      FLAGS.tpu_name, FLAGS.tpu_zone, FLAGS.gcp_project, FLAGS.master)
  trainer_lib.set_dtype_policy(FLAGS.dtype)
  if FLAGS.seed is not None:
    keras.utils.set_random_seed(FLAGS.seed)
  return strategy


def trainer_options():
  """The `Trainer` keyword arguments that come from the shared flags."""
  return dict(iterations_per_loop=FLAGS.iterations_per_loop,
              save_checkpoints_steps=FLAGS.save_checkpoints_steps,
              keep_checkpoint_max=FLAGS.keep_checkpoint_max,
              log_steps=FLAGS.log_steps, dtype=FLAGS.dtype,
              enable_xla=FLAGS.enable_xla)
