"""Runs a root script's `main` inside the test process.

The root scripts share flag names (--input_file, --max_seq_length, ...) and absl
refuses a second definition in one process, so each run imports the script
fresh, parses its flags and removes them again.
"""

import importlib
import sys

from absl import flags


# Defines flags shared by several scripts, each script on import: forgotten
# with the script, so that scripts whose own flags share a name with them
# (export_saved_model's --export_dir) can run in the same process.
_SHARED_FLAGS_MODULE = "bert_tf.training.script_flags"


def _forget(name):
  """Unregisters the absl flags defined by module `name` and unloads it."""
  sys.modules.pop(name, None)
  by_module = flags.FLAGS.flags_by_module_dict()
  for module in (name, _SHARED_FLAGS_MODULE):
    for flag in list(by_module.get(module, [])):
      if flag.name in flags.FLAGS:
        delattr(flags.FLAGS, flag.name)


def run_main(name, *argv):
  """Runs `<name>.py`'s `main` with command-line flags `argv`.

  Args:
    name: the root script's module name, e.g. "run_pretraining".
    *argv: flags such as "--do_train" or "--input_file=x".

  Returns:
    What `main` returns.
  """
  _forget(name)
  script = importlib.import_module(name)
  try:
    script.FLAGS([name + ".py"] + [str(a) for a in argv])
    return script.main([])
  finally:
    flags.FLAGS.unparse_flags()  # flags shared by scripts back to defaults
    _forget(name)
