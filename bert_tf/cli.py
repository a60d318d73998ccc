"""Running a root script's absl `main`, from the file or as an installed command.

`pip install` makes every root script a console command (`bert-run-classifier`,
...). absl's `--help` lists the key flags of the module that `sys.argv[0]`
names; run from a console command that is the entry-point wrapper, which
defines none, so `run` registers the script's key flags for it as well.
"""

import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def run(main, module_name, required=()):
  """Marks required flags and runs `main` with absl, with `--help` intact.

  The command exits with status 0 when `main` returns, whatever it returns
  (absl would exit with a returned value; a script's `main` may return a
  result for Python callers).

  Args:
    main: the script's `main(argv)`.
    module_name: the script module's `__name__`.
    required: names of flags that must be given.
  """
  flags.mark_flags_as_required(list(required))
  if module_name != "__main__":  # a console command: key flags for --help
    for flag in FLAGS.get_key_flags_for_module(module_name):
      FLAGS.register_key_flag_for_module(sys.argv[0], flag)

  def main_exiting_zero(argv):
    main(argv)

  app.run(main_exiting_zero)
