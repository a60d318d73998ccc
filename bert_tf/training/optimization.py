"""The optimizers of the original BERT, ALBERT and Transformer-XL (tf variables).

- `learning_rate_schedule`: linear warmup from 0, then polynomial decay to 0,
  computed from the global step exactly as the original `create_optimizer`
  (the learning rate of step 0 is 0 when there is a warmup).
- `AdamWeightDecay`: google-research/bert `AdamWeightDecayOptimizer`: Adam
  without bias correction and with decoupled weight decay, skipped for
  variables whose original name matches one of `exclude_from_weight_decay`.
- `Lamb`: google-research/albert `LAMBOptimizer`: the same update multiplied by
  the layer-wise trust ratio ||w|| / ||update|| (1 where a norm is 0).

Each variable's update (the element-wise Adam arithmetic, LAMB's norms) is
one XLA computation (`jit_compile_update`, on by default): one pass over the
variable, its gradient and its slots instead of a dozen, with the same
numbers to float32 round-off (XLA may contract `a * b + c` into one FMA: after
the fixture's 3 steps the two differ by at most 1.2e-7,
`tests/test_optimization.py`). The matmuls of the model are not compiled.

Both keep their moments in slot variables that the checkpoint writer names
`<variable name>/adam_m` and `<variable name>/adam_v` (the names both originals
use), and both clip the gradients by their global norm before the update, as
the original `create_optimizer` did (`create_optimizer` builds either).

Transformer-XL's `train_gpu.py` trains with `tf.train.AdamOptimizer`:

- `cosine_learning_rate_schedule`: linear warmup, then cosine decay to
  `min_lr_ratio` of the peak learning rate;
- `Adam`: bias-corrected, epsilon 1e-8, no weight decay, slots named
  `<variable>/Adam` and `<variable>/Adam_1`;
- `create_transformer_xl_optimizer` builds it with clipping by global norm.

No optimizer increments the global step: the training loop does, after the
update, as the original train op.
"""

import math
import re

import keras
import tensorflow as tf

from bert_tf.checkpoints import checkpoint_name

# Variables whose original names match one of these get no weight decay (and,
# for LAMB, no layer adaptation), as in both originals.
EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
SLOT_NAMES = ("adam_m", "adam_v")
OPTIMIZERS = ("adamw", "lamb")


def learning_rate_schedule(init_lr, num_train_steps, num_warmup_steps,
                           power=1.0):
  """Returns the original learning rate as a function of the global step.

  Args:
    init_lr: peak learning rate.
    num_train_steps: steps of the polynomial decay to 0 (`decay_steps`).
    num_warmup_steps: steps of linear warmup; 0 for none.
    power: power of the polynomial decay (1.0: linear, as BERT).

  Returns:
    A function of an integer step Tensor returning the float32 learning rate:
    `init_lr * step / num_warmup_steps` while step < num_warmup_steps, else
    `init_lr * (1 - min(step, num_train_steps) / num_train_steps) ** power`.

  Raises:
    ValueError: if `num_train_steps` is not positive or `num_warmup_steps` is
      negative.
  """
  if num_train_steps <= 0:
    raise ValueError("num_train_steps must be positive, got %d" %
                     num_train_steps)
  if num_warmup_steps < 0:
    raise ValueError("num_warmup_steps must be >= 0, got %d" %
                     num_warmup_steps)

  def schedule(step):
    step = tf.cast(step, tf.int32)
    # tf.compat.v1.train.polynomial_decay with end_learning_rate=0, cycle=False.
    decay_fraction = (tf.cast(tf.minimum(step, num_train_steps), tf.float32) /
                      float(num_train_steps))
    learning_rate = ((init_lr - 0.0) *
                     tf.pow(1.0 - decay_fraction, power) + 0.0)
    if num_warmup_steps:
      warmup_learning_rate = init_lr * (tf.cast(step, tf.float32) /
                                        float(num_warmup_steps))
      is_warmup = tf.cast(step < num_warmup_steps, tf.float32)
      learning_rate = ((1.0 - is_warmup) * learning_rate +
                       is_warmup * warmup_learning_rate)
    return learning_rate

  return schedule


def _tf_variable(variable):
  """The tf.Variable (or distributed variable) behind a Keras variable."""
  return variable.value if isinstance(variable, keras.Variable) else variable


class AdamWeightDecay(tf.Module):
  """Adam with decoupled weight decay and no bias correction (original BERT).

  Usage:

  ```python
  optimizer = AdamWeightDecay(learning_rate_schedule(1e-4, 1000, 100),
                              weight_decay_rate=0.01, clip_norm=1.0)
  optimizer.build(model.trainable_variables)      # under strategy.scope()
  optimizer.apply_gradients(zip(grads, model.trainable_variables), step)
  optimizer.slot_variables()  # {"bert/.../kernel/adam_m": tf.Variable, ...}
  ```
  """

  def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9,
               beta_2=0.999, epsilon=1e-6,
               exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
               clip_norm=None, name="AdamWeightDecay",
               jit_compile_update=True):
    """Creates the optimizer (its slots come with `build`).

    Args:
      learning_rate: a float, or a function of the global step returning the
        learning rate (see `learning_rate_schedule`).
      weight_decay_rate: decoupled weight decay added to the update.
      beta_1: decay of the first moment.
      beta_2: decay of the second moment.
      epsilon: added to sqrt(v) in the denominator.
      exclude_from_weight_decay: regular expressions; variables whose original
        name matches one (`re.search`) get no weight decay.
      clip_norm: if set, gradients are clipped by this global norm first.
      name: name of the module.
      jit_compile_update: compute each variable's next values with XLA (one
        compiled computation per shape and kind of update); False runs the
        same operations one by one.
    """
    super().__init__(name=name)
    self.jit_compile_update = jit_compile_update
    self._next_values_fn = (
        tf.function(self._next_values, jit_compile=True)
        if jit_compile_update else self._next_values)
    self.learning_rate = learning_rate
    self.weight_decay_rate = weight_decay_rate
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())
    self.clip_norm = clip_norm
    self._slots = {}

  def build(self, variables):
    """Creates the zero-initialized `adam_m`/`adam_v` slots of `variables`.

    Call it under the distribution strategy's scope, so that the slots are
    placed (and mirrored) like the variables. Variables that already have
    slots are skipped.

    Args:
      variables: iterable of Keras or tf variables (the trainable ones).
    """
    for variable in variables:
      name = checkpoint_name(variable)
      if name in self._slots:
        continue
      self._slots[name] = tuple(
          tf.Variable(tf.zeros(variable.shape, tf.float32), trainable=False,
                      name="%s/%s" % (name, slot)) for slot in SLOT_NAMES)

  def slot_variables(self):
    """Returns dict: `<variable name>/adam_m|adam_v` -> slot tf.Variable."""
    result = {}
    for name, slots in self._slots.items():
      for slot_name, slot in zip(SLOT_NAMES, slots):
        result["%s/%s" % (name, slot_name)] = slot
    return result

  def current_learning_rate(self, step):
    """The learning rate (float32 Tensor) at global step `step`."""
    if callable(self.learning_rate):
      return self.learning_rate(step)
    return tf.constant(self.learning_rate, tf.float32)

  def apply_gradients(self, grads_and_vars, step, apply_if=None):
    """Clips the gradients (if `clip_norm`) and applies one update.

    Works in eager mode, in a `tf.function`, and inside `strategy.run` (the
    gradients must then already be all-reduced, i.e. equal on every replica;
    the update goes through `merge_call` and `extended.update` like Keras
    optimizers).

    Args:
      grads_and_vars: iterable of (gradient, variable); None gradients are
        skipped, `IndexedSlices` are made dense.
      step: the global step before this update (int Tensor), for the
        learning rate.
      apply_if: optional scalar bool Tensor; when False no variable changes
        (used to skip steps whose float16 gradients overflowed).

    Returns:
      The learning rate used (float32 scalar Tensor).
    """
    pairs = [(g, v) for g, v in grads_and_vars if g is not None]
    if not pairs:
      raise ValueError("No gradient to apply: every gradient is None")
    grads = [tf.convert_to_tensor(g) for g, _ in pairs]
    variables = [v for _, v in pairs]
    missing = [checkpoint_name(v) for v in variables
               if checkpoint_name(v) not in self._slots]
    if missing:
      raise ValueError("Optimizer slots were not built for: %s (call "
                       "build(variables) first)" % ", ".join(missing))
    if self.clip_norm:
      grads, _ = tf.clip_by_global_norm(grads, clip_norm=self.clip_norm)
    learning_rate = self.current_learning_rate(step)
    if tf.distribute.in_cross_replica_context():
      self._apply(tf.distribute.get_strategy(), grads, variables,
                  learning_rate, apply_if)
    else:
      tf.distribute.get_replica_context().merge_call(
          self._apply, args=(grads, variables, learning_rate, apply_if))
    return learning_rate

  def _apply(self, strategy, grads, variables, learning_rate, apply_if):
    """Updates every variable and its slots (cross-replica context)."""
    def update_all():
      updates = []
      for grad, variable in zip(grads, variables):
        name = checkpoint_name(variable)
        m, v = self._slots[name]
        updates.extend(strategy.extended.update(
            _tf_variable(variable), self._update_fn(name),
            args=(grad, m, v, learning_rate), group=False))
      return tf.group(updates)

    if apply_if is None:
      return update_all()
    apply_if = strategy.experimental_local_results(apply_if)[0]
    return tf.cond(apply_if, update_all, tf.no_op)

  def _update_fn(self, name):
    """The per-device update of one variable named `name`."""
    use_weight_decay = self._do_use_weight_decay(name)
    scale = self._do_scale_update(name)

    def update(param, grad, m, v, learning_rate):
      next_values = self._next_values_fn(
          param.read_value(), grad, m.read_value(), v.read_value(),
          learning_rate, use_weight_decay, scale)
      return [variable.assign(value) for variable, value in
              zip((param, m, v), next_values)]

    return update

  def _next_values(self, param, grad, m, v, learning_rate, use_weight_decay,
                   scale):
    """The original update's arithmetic for one variable.

    Args:
      param: float32 Tensor, the variable's value.
      grad: float32 Tensor of the same shape, its (clipped) gradient.
      m: float32 Tensor of the same shape, the first moment.
      v: float32 Tensor of the same shape, the second moment.
      learning_rate: float32 scalar Tensor.
      use_weight_decay: Python bool, whether to add the weight decay.
      scale: Python bool, whether to apply `_scale_update` (LAMB).

    Returns:
      (next_param, next_m, next_v): float32 Tensors of the same shape.
    """
    next_m = self.beta_1 * m + (1.0 - self.beta_1) * grad
    next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
    step_update = next_m / (tf.sqrt(next_v) + self.epsilon)
    if use_weight_decay:
      step_update += self.weight_decay_rate * param
    if scale:
      step_update = self._scale_update(param, step_update)
    return param - learning_rate * step_update, next_m, next_v

  def _do_scale_update(self, name):
    """Whether the variable `name`'s update is scaled (LAMB); Adam: never."""
    del name
    return False

  def _scale_update(self, param, step_update):
    """Hook for LAMB's trust ratio (called when `_do_scale_update`)."""
    del param
    return step_update

  def _do_use_weight_decay(self, name):
    """Whether the variable `name` gets weight decay."""
    if not self.weight_decay_rate:
      return False
    return not any(re.search(r, name) for r in self.exclude_from_weight_decay)


class Lamb(AdamWeightDecay):
  """LAMB as google-research/albert: AdamWeightDecay times a trust ratio.

  For every variable not excluded from layer adaptation, the update is scaled
  by ||param|| / ||update|| (Frobenius norms), or by 1 where either is 0.
  """

  def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9,
               beta_2=0.999, epsilon=1e-6,
               exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
               exclude_from_layer_adaptation=None, clip_norm=None,
               name="Lamb", jit_compile_update=True):
    """Creates the optimizer.

    Args:
      learning_rate, weight_decay_rate, beta_1, beta_2, epsilon,
      exclude_from_weight_decay, clip_norm, name, jit_compile_update: as
      `AdamWeightDecay`.
      exclude_from_layer_adaptation: regular expressions of names without the
        trust ratio; None (or empty) means `exclude_from_weight_decay`, as the
        original.
    """
    super().__init__(learning_rate, weight_decay_rate, beta_1, beta_2,
                     epsilon, exclude_from_weight_decay, clip_norm, name,
                     jit_compile_update)
    self.exclude_from_layer_adaptation = tuple(
        exclude_from_layer_adaptation or self.exclude_from_weight_decay)

  def _do_scale_update(self, name):
    return not any(re.search(r, name)
                   for r in self.exclude_from_layer_adaptation)

  def _scale_update(self, param, step_update):
    w_norm = tf.norm(param, ord=2)
    g_norm = tf.norm(step_update, ord=2)
    ratio = tf.where(w_norm > 0,
                     tf.where(g_norm > 0, w_norm / g_norm, 1.0), 1.0)
    return ratio * step_update


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


def create_optimizer(init_lr, num_train_steps, num_warmup_steps,
                     optimizer="adamw"):
  """The optimizer of the original `create_optimizer` (BERT; ALBERT for LAMB).

  Args:
    init_lr: peak learning rate.
    num_train_steps: steps of the linear decay to 0.
    num_warmup_steps: steps of linear warmup.
    optimizer: "adamw" or "lamb".

  Returns:
    An `AdamWeightDecay` or `Lamb` with weight decay 0.01 (not for
    LayerNorm/layer_norm/bias), betas 0.9/0.999, epsilon 1e-6, gradient
    clipping by global norm 1.0 and the warmup + linear decay schedule.

  Raises:
    ValueError: for an unknown `optimizer`.
  """
  if optimizer not in OPTIMIZERS:
    raise ValueError("Unknown optimizer %r (expected one of %s)" %
                     (optimizer, ", ".join(OPTIMIZERS)))
  cls = AdamWeightDecay if optimizer == "adamw" else Lamb
  return cls(learning_rate_schedule(init_lr, num_train_steps,
                                    num_warmup_steps),
             weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
             exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
             clip_norm=1.0)


# ------------------------------------------------------- Transformer-XL --


def cosine_learning_rate_schedule(learning_rate, train_steps, warmup_steps,
                                  min_lr_ratio):
  """The original learning rate as a function of the global step.

  Args:
    learning_rate: peak learning rate.
    train_steps: total steps (the decay ends at `train_steps`).
    warmup_steps: steps of linear warmup from 0 (0: none).
    min_lr_ratio: the final learning rate as a fraction of the peak.

  Returns:
    A function of an integer step Tensor returning the float32 rate:
    `learning_rate * step / warmup_steps` during warmup, else
    `tf.compat.v1.train.cosine_decay(learning_rate, step - warmup_steps,
    train_steps - warmup_steps, alpha=min_lr_ratio)`.

  Raises:
    ValueError: if `train_steps` <= `warmup_steps` or a value is negative.
  """
  if warmup_steps < 0 or train_steps <= warmup_steps:
    raise ValueError("Need 0 <= warmup_steps < train_steps, got "
                     "warmup_steps=%d, train_steps=%d" %
                     (warmup_steps, train_steps))
  if not 0.0 <= min_lr_ratio <= 1.0:
    raise ValueError("min_lr_ratio must be in [0, 1], got %r" % min_lr_ratio)
  decay_steps = train_steps - warmup_steps

  def schedule(step):
    step = tf.cast(step, tf.float32)
    progress = tf.minimum(step - warmup_steps, decay_steps) / decay_steps
    cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
    decay_lr = learning_rate * ((1.0 - min_lr_ratio) * cosine + min_lr_ratio)
    if not warmup_steps:
      return decay_lr
    warmup_lr = step / warmup_steps * learning_rate
    return tf.where(step < warmup_steps, warmup_lr, decay_lr)

  return schedule


class Adam(AdamWeightDecay):
  """`tf.train.AdamOptimizer`: Adam with bias correction, as TXL trains.

  The step size at global step s (update number t = s + 1) is
  `lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`, applied to m / (sqrt(v) +
  epsilon). The slots are written as the TF1 optimizer names them,
  `<variable>/Adam` (m) and `<variable>/Adam_1` (v). The bias correction is
  computed from the global step (TF1 kept `beta1_power`/`beta2_power`
  variables instead; they are not written).
  """

  def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
               clip_norm=None, name="Adam"):
    """Creates the optimizer.

    Args:
      learning_rate: float or function of the global step.
      beta_1: decay of the first moment.
      beta_2: decay of the second moment.
      epsilon: added to sqrt(v).
      clip_norm: if set, gradients are clipped by this global norm.
      name: name of the module.
    """
    super().__init__(learning_rate, weight_decay_rate=0.0, beta_1=beta_1,
                     beta_2=beta_2, epsilon=epsilon,
                     exclude_from_weight_decay=(), clip_norm=clip_norm,
                     name=name)

  def slot_variables(self):
    """Returns dict: `<variable name>/Adam|Adam_1` -> slot tf.Variable."""
    result = {}
    for name, (m, v) in self._slots.items():
      result["%s/Adam" % name] = m
      result["%s/Adam_1" % name] = v
    return result

  def current_learning_rate(self, step):
    """The bias-corrected step size (float32) of the update at `step`."""
    t = tf.cast(step, tf.float32) + 1.0
    return (self.scheduled_learning_rate(step) *
            tf.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t))

  def scheduled_learning_rate(self, step):
    """The learning rate of the schedule (float32) at `step`."""
    return super().current_learning_rate(step)

  def apply_gradients(self, grads_and_vars, step, apply_if=None):
    """As `AdamWeightDecay.apply_gradients`; returns the scheduled rate."""
    super().apply_gradients(grads_and_vars, step, apply_if)
    return self.scheduled_learning_rate(step)


def create_transformer_xl_optimizer(learning_rate, train_steps, warmup_steps,
                                    clip, min_lr_ratio=0.004):
  """The optimizer of the original Transformer-XL `train_gpu.py`.

  Args:
    learning_rate: peak learning rate (`--learning_rate`).
    train_steps: `--train_steps`.
    warmup_steps: `--warmup_steps`.
    clip: global norm the gradients are clipped to (`--clip`).
    min_lr_ratio: `--min_lr_ratio`.

  Returns:
    An `Adam` with the warmup + cosine schedule and clipping.
  """
  return Adam(cosine_learning_rate_schedule(learning_rate, train_steps,
                                            warmup_steps, min_lr_ratio),
              clip_norm=clip)
