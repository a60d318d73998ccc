"""The original optimizers: AdamWeightDecay (BERT), LAMB (ALBERT), the schedule."""

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertPretrainer
from bert_tf.tasks import pretraining
from bert_tf.training import optimization

FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
            "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


def _train_three_steps(root, optimizer):
  """The original's 3 training steps of the fixture model.

  Args:
    root: the `original_bert_small` fixture directory.
    optimizer: an `optimization` optimizer (slots not built).

  Returns:
    (the model after the steps, the fixture's io.npz, the 3 losses before
    each step).
  """
  model = BertPretrainer(BertConfig.from_json_file(
      str(root / "bert_config.json")))
  checkpoints.load_checkpoint(model, str(root / "bert_model.ckpt"))
  io = np.load(root / "io.npz")
  features = {k: io[k] for k in FEATURES}
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      loss, _ = pretraining.loss_fn(model, features, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables), step)
    step.assign_add(1)
    return loss

  return model, io, [float(train_step()) for _ in range(3)]


def test_three_steps_reproduce_the_original_trained_checkpoint(fixtures_dir):
  root = fixtures_dir / "original_bert_small"
  optimizer = optimization.create_optimizer(1e-3, num_train_steps=10,
                                            num_warmup_steps=2)
  model, io, losses = _train_three_steps(root, optimizer)
  np.testing.assert_allclose(losses, io["train_losses_before_step"],
                             atol=1e-5, rtol=0)
  features = {k: io[k] for k in FEATURES}
  np.testing.assert_allclose(pretraining.loss_fn(model, features, True)[0],
                             io["total_loss_after_3_steps"], atol=1e-5, rtol=0)
  trained = tf.train.load_checkpoint(str(root / "trained" / "bert_model.ckpt"))
  ours = checkpoints.variables_by_name(model)
  assert sorted(ours) == sorted(trained.get_variable_to_shape_map())
  for name, variable in ours.items():
    np.testing.assert_allclose(variable.numpy(), trained.get_tensor(name),
                               atol=1e-5, rtol=0, err_msg=name)
  slots = optimizer.slot_variables()
  assert len(slots) == 2 * len(ours)
  assert "bert/embeddings/word_embeddings/adam_m" in slots
  assert "cls/predictions/output_bias/adam_v" in slots


@pytest.mark.parametrize("cls", [optimization.AdamWeightDecay,
                                 optimization.Lamb])
def test_xla_update_gives_the_numbers_of_the_op_by_op_update(
    fixtures_dir, cls):
  """The same to float32 round-off: XLA contracts a * b + c into FMAs."""
  trained = {}
  for jit in (True, False):
    optimizer = cls(optimization.learning_rate_schedule(1e-3, 10, 2),
                    weight_decay_rate=0.01, clip_norm=1.0,
                    jit_compile_update=jit)
    model, _, losses = _train_three_steps(
        fixtures_dir / "original_bert_small", optimizer)
    trained[jit] = (losses, {
        name: variable.numpy() for name, variable in dict(
            checkpoints.variables_by_name(model),
            **optimizer.slot_variables()).items()})
  np.testing.assert_allclose(trained[True][0], trained[False][0], atol=1e-6,
                             rtol=0)
  for name, value in trained[False][1].items():  # largest: 1.2e-7, 6e-8
    np.testing.assert_allclose(trained[True][1][name], value, atol=2e-7,
                               rtol=0, err_msg=name)


def test_schedule_is_linear_warmup_then_linear_decay_to_zero():
  schedule = optimization.learning_rate_schedule(1e-3, num_train_steps=10,
                                                 num_warmup_steps=2)
  got = [float(schedule(tf.constant(s, tf.int64))) for s in range(13)]
  expected = [0.0, 5e-4, 8e-4, 7e-4, 6e-4, 5e-4, 4e-4, 3e-4, 2e-4, 1e-4,
              0.0, 0.0, 0.0]
  np.testing.assert_allclose(got, expected, atol=1e-9, rtol=0)
  no_warmup = optimization.learning_rate_schedule(2.0, 4, 0)
  assert [float(no_warmup(s)) for s in range(5)] == [2.0, 1.5, 1.0, 0.5, 0.0]


def _numpy_step(param, grad, lr, decay, lamb):
  """One step of the original update from zero moments, in float64."""
  m = 0.1 * grad
  v = 0.001 * grad ** 2
  update = m / (np.sqrt(v) + 1e-6)
  if decay:
    update = update + 0.01 * param
  ratio = 1.0
  if lamb:
    w_norm, g_norm = np.linalg.norm(param), np.linalg.norm(update)
    ratio = w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
  return param - ratio * lr * update


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_one_step_by_name_matches_the_formula(name):
  rng = np.random.RandomState(0)
  values = {
      "layer_0/dense/kernel": rng.randn(3, 4).astype(np.float32),
      "layer_0/dense/bias": rng.randn(4).astype(np.float32),
      "layer_0/LayerNorm/gamma": rng.randn(4).astype(np.float32),
      "layer_0/zero/kernel": np.zeros([2, 2], np.float32),
  }
  grads = {n: 0.1 * rng.randn(*v.shape).astype(np.float32)
           for n, v in values.items()}
  variables = [tf.Variable(v, name=n) for n, v in values.items()]
  optimizer = optimization.create_optimizer(0.5, num_train_steps=4,
                                            num_warmup_steps=0,
                                            optimizer=name)
  optimizer.build(variables)
  learning_rate = optimizer.apply_gradients(
      [(tf.constant(grads[checkpoints.checkpoint_name(v)]), v)
       for v in variables], tf.constant(1, tf.int64))
  assert float(learning_rate) == pytest.approx(0.375)  # 0.5 * (1 - 1/4)
  for variable in variables:
    n = checkpoints.checkpoint_name(variable)
    excluded = "bias" in n or "LayerNorm" in n
    expected = _numpy_step(values[n].astype(np.float64), grads[n], 0.375,
                           decay=not excluded, lamb=name == "lamb" and
                           not excluded)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5,
                               atol=1e-6, err_msg=n)
    slots = optimizer.slot_variables()
    np.testing.assert_allclose(slots[n + "/adam_m"].numpy(), 0.1 * grads[n],
                               rtol=1e-6)
    np.testing.assert_allclose(slots[n + "/adam_v"].numpy(),
                               0.001 * grads[n] ** 2, rtol=1e-5)


def test_lamb_trust_ratio_is_one_for_a_zero_weight():
  variable = tf.Variable(np.zeros([3], np.float32), name="w/kernel")
  optimizer = optimization.Lamb(1.0, epsilon=0.0)
  optimizer.build([variable])
  optimizer.apply_gradients([(tf.constant([1.0, -2.0, 0.5]), variable)],
                            tf.constant(0))
  # update = 0.1 g / sqrt(0.001 g^2) = sign(g) * 0.1 / sqrt(0.001); the
  # trust ratio would be 0 / |update|: it is 1 instead.
  np.testing.assert_allclose(variable.numpy(),
                             -np.sign([1.0, -2.0, 0.5]) * 0.1 / np.sqrt(1e-3),
                             rtol=1e-5)


def test_gradients_are_clipped_by_global_norm_before_the_update():
  variable = tf.Variable(np.zeros([2], np.float32), name="w/bias")
  optimizer = optimization.create_optimizer(1.0, 10, 0)
  optimizer.build([variable])
  optimizer.apply_gradients([(tf.constant([30.0, 40.0]), variable)],
                            tf.constant(0))
  # Clipped to [0.6, 0.8]: m = 0.1 g, v = 0.001 g^2 in clipped units.
  clipped = np.array([0.6, 0.8])
  np.testing.assert_allclose(optimizer.slot_variables()["w/bias/adam_m"],
                             0.1 * clipped, rtol=1e-6)


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"Unknown optimizer 'sgd' \(expected "
                     r"one of adamw, lamb\)"):
    optimization.create_optimizer(1e-3, 10, 1, optimizer="sgd")
  with pytest.raises(ValueError, match="num_train_steps must be positive"):
    optimization.learning_rate_schedule(1e-3, 0, 0)
  variable = tf.Variable([1.0], name="never/built")
  with pytest.raises(ValueError, match=r"slots were not built for: "
                     r"never/built"):
    optimization.create_optimizer(1e-3, 10, 1).apply_gradients(
        [(tf.constant([1.0]), variable)], tf.constant(0))


def _numpy_lamb_steps(values, grads_per_step, init_lr, num_train_steps,
                      num_warmup_steps):
  """ALBERT's create_optimizer(optimizer="lamb") steps, in float64 numpy.

  Written from the formulas of ALBERT's optimization.py / lamb_optimizer.py:
  global-norm clipping to 1.0, warmup then linear decay, Adam moments without
  bias correction, weight decay 0.01 and the trust ratio ||w|| / ||update||
  (1 where a norm is 0) except for names with LayerNorm, layer_norm or bias.
  """
  params = {n: v.astype(np.float64) for n, v in values.items()}
  m = {n: np.zeros_like(v) for n, v in params.items()}
  v = {n: np.zeros_like(p) for n, p in params.items()}
  for step, grads in enumerate(grads_per_step):
    global_norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2)
                              for g in grads.values()))
    scale = 1.0 / max(global_norm, 1.0)
    if step < num_warmup_steps:
      lr = init_lr * step / num_warmup_steps
    else:
      lr = init_lr * (1.0 - min(step, num_train_steps) / num_train_steps)
    for n in params:
      g = grads[n] * scale
      m[n] = 0.9 * m[n] + 0.1 * g
      v[n] = 0.999 * v[n] + 0.001 * g * g
      update = m[n] / (np.sqrt(v[n]) + 1e-6)
      excluded = any(s in n for s in ("LayerNorm", "layer_norm", "bias"))
      ratio = 1.0
      if not excluded:
        update = update + 0.01 * params[n]
        w_norm, u_norm = np.linalg.norm(params[n]), np.linalg.norm(update)
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
      params[n] = params[n] - ratio * lr * update
  return params, m, v


def test_lamb_steps_with_clipping_and_schedule_match_albert_formulas():
  rng = np.random.RandomState(3)
  prefix = "bert/encoder/transformer/group_0/inner_group_0/"
  values = {
      prefix + "attention_1/self/query/kernel": rng.randn(4, 4),
      prefix + "attention_1/self/query/bias": rng.randn(4),
      prefix + "LayerNorm_1/gamma": 1.0 + 0.1 * rng.randn(4),
      "bert/encoder/embedding_hidden_mapping_in/kernel": rng.randn(2, 4),
      "cls/predictions/transform/layer_norm/beta": rng.randn(4),
      "bert/pooler/dense/kernel": np.zeros([4, 4]),  # trust ratio 1
  }
  values = {n: v.astype(np.float32) for n, v in values.items()}
  # Large gradients on step 0 and 2 (clipped), small ones on step 1.
  grads_per_step = [
      {n: (s_scale * rng.randn(*v.shape)).astype(np.float32)
       for n, v in values.items()} for s_scale in (5.0, 0.05, 3.0)]
  variables = [tf.Variable(v, name=n) for n, v in values.items()]
  optimizer = optimization.create_optimizer(0.1, num_train_steps=5,
                                            num_warmup_steps=2,
                                            optimizer="lamb")
  optimizer.build(variables)
  for step, grads in enumerate(grads_per_step):
    optimizer.apply_gradients(
        [(tf.constant(grads[checkpoints.checkpoint_name(v)]), v)
         for v in variables], tf.constant(step, tf.int64))
  params, m, v = _numpy_lamb_steps(values, grads_per_step, 0.1, 5, 2)
  slots = optimizer.slot_variables()
  for variable in variables:
    n = checkpoints.checkpoint_name(variable)
    np.testing.assert_allclose(variable.numpy(), params[n], rtol=1e-5,
                               atol=1e-6, err_msg=n)
    np.testing.assert_allclose(slots[n + "/adam_m"].numpy(), m[n], rtol=1e-5,
                               atol=1e-7, err_msg=n)
    np.testing.assert_allclose(slots[n + "/adam_v"].numpy(), v[n], rtol=1e-5,
                               atol=1e-9, err_msg=n)
  # The zero kernel moved by exactly lr * update (ratio 1), not by 0.
  assert np.abs(params["bert/pooler/dense/kernel"]).max() > 0
