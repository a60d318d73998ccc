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

from bert_tf.data import record_format
from bert_tf.training import distribution
from bert_tf.training import optimization
from bert_tf.training import trainer as trainer_lib

FLAGS = flags.FLAGS


# Flags of the original scripts that several root scripts share, with the
# originals' defaults and help texts: (define function, default, help). The
# scripts' own flags (of one script, or of another default or meaning there,
# such as max_seq_length or do_predict) stay in the scripts.
_ORIGINAL_FLAGS = {
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
    "do_train": (flags.DEFINE_bool, False, "Whether to run training."),
    "do_eval": (flags.DEFINE_bool, False,
                "Whether to run eval on the dev set."),
    "train_batch_size": (flags.DEFINE_integer, 32,
                         "Total batch size for training."),
    "eval_batch_size": (flags.DEFINE_integer, 8,
                        "Total batch size for eval."),
    "learning_rate": (flags.DEFINE_float, 5e-5,
                      "The initial learning rate for Adam."),
    "save_checkpoints_steps": (flags.DEFINE_integer, 1000,
                               "How often to save the model checkpoint."),
    "iterations_per_loop": (flags.DEFINE_integer, 1000,
                            "How many steps to make in each estimator call."),
}


def define_original_flags(*names):
  """Defines the named original flags of `_ORIGINAL_FLAGS` (once per process).

  `bert_config_file` comes with ALBERT's alias `albert_config_file`.

  Args:
    *names: flag names, keys of `_ORIGINAL_FLAGS`.
  """
  for name in names:
    if name in FLAGS:
      continue
    define, default, help_text = _ORIGINAL_FLAGS[name]
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
  define_original_flags("train_batch_size", "learning_rate",
                        "save_checkpoints_steps", "iterations_per_loop")
  if "num_train_epochs" in FLAGS:
    return
  flags.DEFINE_float("num_train_epochs", 3.0,
                     "Total number of training epochs to perform.")
  flags.DEFINE_float(
      "warmup_proportion", 0.1,
      "Proportion of training to perform linear learning rate warmup for. "
      "E.g., 0.1 = 10% of training.")


def define_log_examples_flag(default):
  """Defines `--log_examples`: how many first examples are logged in full.

  Args:
    default: the original script's count (run_classifier 5, run_squad 20).
  """
  flags.DEFINE_integer(
      "log_examples", default, lower_bound=0,
      help="How many of the first examples of each input file to log in full "
      "(tokens, ids, label or answer), as the original's %d; 0 logs none." %
      default)


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
  define_dtype_flag()
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


def define_dtype_flag():
  """Defines `--dtype` (once per process); `trainer.set_dtype_policy` reads it.

  run_transformer_xl.py, which has the original Transformer-XL flags instead
  of the others of `define_training_flags`, defines it alone.
  """
  if "dtype" in FLAGS:
    return
  flags.DEFINE_enum(
      "dtype", "float32", list(trainer_lib.DTYPES),
      "Compute dtype: float32, bfloat16 (mixed, float32 variables) or "
      "float16 (mixed, with dynamic loss scaling).")


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


def finetuning_trainer(strategy, model_fn, loss_fn, num_train_examples):
  """The `Trainer` of run_classifier and run_squad, initialized, from the flags.

  With --do_train it trains with the original AdamWeightDecay over
  `optimization.num_train_steps` steps (from --train_batch_size,
  --num_train_epochs, --warmup_proportion, --learning_rate). The model starts
  from the latest checkpoint of --output_dir, else --init_checkpoint.

  Args:
    strategy: the `tf.distribute.Strategy` (`strategy_from_flags`).
    model_fn: the task's function building the model.
    loss_fn: the task's loss function.
    num_train_examples: examples of one training epoch (ignored without
      --do_train).

  Returns:
    (trainer, num_train_steps), num_train_steps None without --do_train.

  Raises:
    ValueError: without --do_train when there is no checkpoint to start
      from, or with --do_train when the flags give no training step.
  """
  optimizer_fn = num_train_steps = None
  if FLAGS.do_train:
    num_train_steps, num_warmup_steps = optimization.num_train_steps(
        num_train_examples, FLAGS.train_batch_size, FLAGS.num_train_epochs,
        FLAGS.warmup_proportion)

    def optimizer_fn():
      return optimization.create_optimizer(
          FLAGS.learning_rate, num_train_steps, num_warmup_steps)

  trainer = trainer_lib.Trainer(
      strategy, model_fn, loss_fn, FLAGS.output_dir,
      optimizer_fn=optimizer_fn, global_batch_size=FLAGS.train_batch_size,
      **trainer_options())
  restored = trainer.initialize(FLAGS.init_checkpoint)
  if not FLAGS.do_train and restored is None:
    raise ValueError("Without --do_train the model needs a checkpoint: %s "
                     "has none and --init_checkpoint is not set" %
                     FLAGS.output_dir)
  return trainer, num_train_steps


def train_on_records(trainer, record_file, dataset_fn, num_train_steps,
                     counts):
  """Trains a fine-tuning script's model on its training records.

  Logs the original "Running training" lines, then trains; a corrupt or
  truncated `record_file` fails with its name.

  Args:
    trainer: the `Trainer` (`finetuning_trainer`).
    record_file: path of the training TFRecord file.
    dataset_fn: `fn(batch_size, input_context)` -> the `tf.data.Dataset` of
      training batches of `record_file` of a replica's `batch_size`.
    num_train_steps: steps to train to.
    counts: list of (label, number) logged first, as the original script
      (e.g. [("Num examples", 3668)]).
  """
  logging.info("***** Running training *****")
  for label, number in counts:
    logging.info("  %s = %d", label, number)
  logging.info("  Batch size = %d", FLAGS.train_batch_size)
  logging.info("  Num steps = %d", num_train_steps)
  with record_format.corrupt_files_named([record_file]):
    trainer.train(
        lambda context, start_step: dataset_fn(
            context.get_per_replica_batch_size(FLAGS.train_batch_size),
            context),
        num_train_steps)


def trainer_options():
  """The `Trainer` keyword arguments that come from the shared flags."""
  return dict(iterations_per_loop=FLAGS.iterations_per_loop,
              save_checkpoints_steps=FLAGS.save_checkpoints_steps,
              keep_checkpoint_max=FLAGS.keep_checkpoint_max,
              log_steps=FLAGS.log_steps, dtype=FLAGS.dtype,
              enable_xla=FLAGS.enable_xla)
