"""Training-health telemetry: gradient norms per group, and a guard that names a step whose gradient norm or
per-layer KL jumps by orders of magnitude over its running median.

Why: a hierarchy whose conditionals started far from N(0, I) had, at step 1, a lower-layer KL of millions of nats
and a gradient norm of 1e9; Adam's second moments then stayed inflated for thousands of steps and froze the
encoder, while the epoch means in the log looked merely "high" (issue 20). The monitor watches every step:

* `group_norms` (pure): the global gradient norm and one per group of variables (the encoder, each conditional
  q(z^{i+1}|z^i) and p(z^i|z^{i+1}) of a hierarchy, the decoder). The model tracks their epoch means as
  `grad_norm` and `grad_norm_<group>`, so they reach the log line and TensorBoard.
* `spike_ratios` (pure): each watched value against the median of its last `window` steps.
* `HealthMonitor` (a Keras layer of non-trainable state, updated inside the train step): the ring buffer of recent
  values, the count of spikes, and the worst spike not yet reported (step, quantity, value, median).
* `HealthCallback`: turns a new spike into one warning line naming the step, the quantity and the size.

A value spikes when it exceeds `factor` times max(running median, `floor`) after `warmup` steps of history. The
floor (1 nat for KLs, 1 for gradient norms) keeps a collapsed layer whose KL moves from 0.001 to 0.2 nats from
raising an alarm. With tf.distribute each replica watches the gradient of its own rows' batch-mean loss (the
first replica's monitor state is kept, and the tracked norms average the replicas'): the norm of the all-reduced
gradient would cost a second all-reduce of every gradient.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

WINDOW = 32  # steps of history behind the running median
WARMUP = 8  # steps of history before a spike can be flagged
FACTOR = 100.0  # "orders of magnitude": a value above FACTOR * max(median, FLOOR) is a spike
FLOOR = 1.0


def group_norms(gradients, variables, groups):
  """Global and per-group L2 norms of `gradients`.

  Args:
    gradients: list of gradient tensors (None for variables without one), aligned with `variables`.
    variables: the variables the gradients are of.
    groups: dict group name -> list of variables (a variable in no group counts only in the global norm).

  Returns:
    dict "global" -> scalar, and group name -> scalar (0 for a group without gradients).
  """
  group_of = {}
  for name, group in groups.items():
    for v in group:
      group_of[id(v)] = name
  squares = {name: [] for name in groups}
  total = []
  for g, v in zip(gradients, variables):
    if g is None:
      continue
    s = tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
    total.append(s)
    if id(v) in group_of:
      squares[group_of[id(v)]].append(s)
  norm = lambda parts: tf.sqrt(tf.add_n(parts)) if parts else tf.constant(0.0)  # noqa: E731
  return {"global": norm(total), **{name: norm(parts) for name, parts in squares.items()}}


def running_median(history, count):
  """The lower median of each row's valid entries: `[Q, W]` ring buffer, `count` steps written (the first
  min(count, W) slots are valid) -> `[Q]` (0 where no slot is valid). By rank counting (an entry is the lower median
  when fewer than k + 1 valid entries are below it and at least k + 1 are at or below it, k = (n - 1) // 2), not by
  sorting: tf.sort and dynamic slicing inside an XLA-compiled train step (--jit_compile) made the compile hang on CPU.
  """
  window = tf.shape(history)[1]
  n = tf.minimum(tf.cast(count, tf.int32), window)
  valid = tf.range(window) < n  # [W]
  column = history[:, None, :]  # [Q, 1, W]: the other entries
  row = history[:, :, None]  # [Q, W, 1]: each candidate
  counted = tf.cast(valid, history.dtype)[None, None, :]
  below = tf.reduce_sum(tf.cast(column < row, history.dtype) * counted, axis=2)  # [Q, W]
  at_or_below = tf.reduce_sum(tf.cast(column <= row, history.dtype) * counted, axis=2)
  k = tf.cast((tf.maximum(n, 1) - 1) // 2, history.dtype)
  is_median = tf.logical_and(tf.logical_and(below <= k, at_or_below > k), valid[None, :])
  found = tf.reduce_any(is_median, axis=1)
  median = tf.reduce_max(tf.where(is_median, history, tf.fill(tf.shape(history), -np.inf)), axis=1)
  return tf.where(found, median, tf.zeros_like(median))


def spike_ratios(values, history, count, floor=FLOOR, warmup=WARMUP):
  """How far each value sits above its running median.

  Args:
    values: `[Q]` this step's values.
    history: `[Q, W]` ring buffer of earlier values.
    count: scalar, steps written to the buffer so far (only the first min(count, W) slots are valid).
    floor: the median is raised to at least this before dividing.
    warmup: fewer valid steps than this give ratios of 0 (no alarm).

  Returns:
    (ratios `[Q]`: value / max(median, floor), or 0 during warm-up; medians `[Q]`).
  """
  valid = tf.minimum(tf.cast(count, tf.int32), tf.shape(history)[1])
  medians = running_median(history, count)
  ratios = values / tf.maximum(medians, floor)
  return tf.where(valid >= warmup, ratios, tf.zeros_like(ratios)), medians


class HealthMonitor(keras.layers.Layer):
  """Per-step spike detection over named quantities (see the module docstring); state lives in non-trainable
  variables, so it survives `tf.function` steps, is checkpointed with the model, and a skipped (non-finite) step
  leaves it untouched like any other statistic.

  Args:
    names: the watched quantities, e.g. ("grad_norm", "grad_norm_encoder", ..., "kl_1", ...).
    window, factor, floor, warmup: see the module constants.
  """

  def __init__(self, names, window=WINDOW, factor=FACTOR, floor=FLOOR, warmup=WARMUP, **kwargs):
    super().__init__(**kwargs)
    self.names = tuple(names)
    self.window, self.factor, self.floor, self.warmup = int(window), float(factor), float(floor), int(warmup)
    q = len(self.names)
    agg = "only_first_replica"
    self.history = self.add_weight(shape=(q, self.window), initializer="zeros", trainable=False, name="history",
                                   aggregation=agg)
    self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count", aggregation=agg)
    self.spikes = self.add_weight(shape=(), initializer="zeros", trainable=False, name="spikes", aggregation=agg)
    # The worst spike not yet reported: [step, quantity index, value, median, ratio].
    self.pending = self.add_weight(shape=(5,), initializer="zeros", trainable=False, name="pending",
                                   aggregation=agg)

  def update(self, values, step):
    """Scores `values` `[Q]` (the step's quantities, in `names` order) against the history, records a spike,
    and pushes the values into the ring buffer. Returns the number of quantities that spiked this step."""
    # One-hot arithmetic instead of gathers and scatters at dynamic indices (XLA-friendly; see running_median).
    values = tf.cast(values, tf.float32)
    ratios, medians = spike_ratios(values, self.history, self.count, self.floor, self.warmup)
    spiking = ratios > self.factor
    worst = tf.one_hot(tf.argmax(ratios, output_type=tf.int32), len(self.names), dtype=tf.float32)
    pick = lambda t: tf.reduce_sum(tf.where(worst > 0, t, tf.zeros_like(t)))  # noqa: E731  (NaN-safe)
    hits = tf.reduce_sum(tf.cast(spiking, tf.float32))
    index = tf.reduce_sum(worst * tf.range(len(self.names), dtype=tf.float32))
    record = tf.stack([tf.cast(step, tf.float32), index, pick(values), pick(medians), pick(ratios)])
    take = tf.logical_and(hits > 0, pick(ratios) > self.pending[4])
    self.pending.assign(tf.where(take, record, self.pending))
    self.spikes.assign_add(hits)
    slot = tf.one_hot(tf.math.floormod(tf.cast(self.count, tf.int32), self.window), self.window, dtype=tf.float32)
    self.history.assign(self.history * (1.0 - slot[None, :]) + values[:, None] * slot[None, :])
    self.count.assign_add(1.0)
    return hits

  def take_report(self):
    """(spike count so far, the worst pending spike as a dict or None); clears the pending spike. Eager only."""
    step, index, value, median, ratio = (float(v) for v in self.pending.numpy())
    report = None
    if ratio > 0:  # (nothing to clear otherwise: the callback calls this after every batch)
      self.pending.assign(tf.zeros_like(self.pending))
      report = {"step": int(step), "quantity": self.names[int(index)], "value": value, "median": median,
                "ratio": ratio}
    return int(self.spikes.numpy()), report

  def get_config(self):
    return {**super().get_config(), "names": list(self.names), "window": self.window, "factor": self.factor,
            "floor": self.floor, "warmup": self.warmup}


def spike_message(report, window=WINDOW):
  """One line naming the step, the quantity and the size of a spike (`HealthMonitor.take_report`), and what to do.

  A gradient norm spiking alone was, in every case measured (the quickstart's VAE, 3 seeds), dominated by one
  image of the batch (0.54-1.0 of the gradient's norm): early in training the posterior sample of an image can
  land where the decoder draws thousands of wrong pixels (benchmarks/gradient_spikes.py; README, "Training
  health"). A KL jump is the failure this guard was written for (an initialisation or a learning rate that blows
  a layer up)."""
  head = (f"Training health: at step {report['step']} {report['quantity']} jumped to {report['value']:.4g}, "
          f"{report['ratio']:.3g} times its running median ({report['median']:.4g} over the last {window} steps). ")
  if report["quantity"].startswith("grad_norm"):
    return head + ("A lone gradient spike is often one badly reconstructed image of the batch (README, "
                   "\"Training health\"); if spikes keep coming, lower --learning_rate or clip gradients "
                   "(--clip_grad_norm).")
  return head + "Lower --learning_rate, clip gradients (--clip_grad_norm), or check the model's initialisation."


class HealthCallback(keras.callbacks.Callback):
  """Warns (once per spike, with the worst pending one) when the model's `HealthMonitor` flags a spike; the
  warnings are also kept in `messages`."""

  def __init__(self):
    super().__init__()
    self.messages = []

  def _check(self):
    monitor = getattr(self.model, "health", None)
    if monitor is None:
      return
    _, report = monitor.take_report()
    if report is not None:
      message = spike_message(report, monitor.window)
      self.messages.append(message)
      warnings.warn(message, RuntimeWarning, stacklevel=2)

  def on_train_batch_end(self, batch, logs=None):
    self._check()

  def on_epoch_end(self, epoch, logs=None):
    self._check()
