"""Task code behind the root scripts (run_classifier, run_squad, ...)."""


def num_train_steps(num_examples, train_batch_size, num_train_epochs,
                    warmup_proportion):
  """The original step counts.

  Args:
    num_examples: training examples.
    train_batch_size: global batch size.
    num_train_epochs: epochs (float).
    warmup_proportion: fraction of the steps for warmup.

  Returns:
    (num_train_steps, num_warmup_steps) =
    (int(examples / batch * epochs), int(steps * warmup_proportion)).

  Raises:
    ValueError: if that gives no training step.
  """
  steps = int(num_examples / train_batch_size * num_train_epochs)
  if steps <= 0:
    raise ValueError(
        "%d training examples with --train_batch_size=%d and "
        "--num_train_epochs=%s give no training step" %
        (num_examples, train_batch_size, num_train_epochs))
  return steps, int(steps * warmup_proportion)
