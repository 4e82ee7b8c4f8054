"""Server-side request batching, as TF Serving's `--enable_batching` does.

Concurrent Predict calls to the same version and signature are merged into
one model call: a batch of 8 `recommend` requests costs about 1.5x one request
on CPU, not 8x, so under load this is what keeps p99 flat. Same knobs and
text format as TF Serving's `--batching_parameters_file`
(serving/deploy/batching_parameters.txt works for both).

Requests are only merged when that cannot change their answers: equal scalar
inputs (such as `k`), equal trailing shapes, except for inputs whose padding
the model ignores by contract (`PADDABLE_INPUTS`, "" pads). Each request is
checked on its own before it joins a batch, and a batch that fails is re-run
request by request, so one bad request never fails its neighbours.
"""
import dataclasses
import re
import threading
import time
from typing import Callable, Dict, List, Optional

import grpc
import numpy as np

from serving import protocol
from trainer import contract
from trainer import features

# Inputs whose "" padding the signatures ignore (history, genres, the
# business rules' id and genre lists).
PADDABLE_INPUTS = frozenset({features.HISTORY, features.GENRES,
                             contract.EXCLUDE, contract.ALLOWED_GENRES})

Inputs = Dict[str, np.ndarray]


@dataclasses.dataclass
class BatchingParameters:
  max_batch_size: int = 64
  batch_timeout_micros: int = 2000
  max_enqueued_batches: int = 256
  num_batch_threads: int = 2
  pad_variable_length_inputs: bool = True

  @classmethod
  def from_text(cls, text: str) -> "BatchingParameters":
    """Parses TF Serving's BatchingParameters text proto (the fields above;
    others, such as allowed_batch_sizes, are accepted and ignored)."""
    values = {}
    for field in dataclasses.fields(cls):
      match = re.search(
          rf"^\s*{field.name}\s*(?::\s*(\w+)|\{{\s*value\s*:\s*(\w+)\s*\}})",
          text, re.M)
      if match:
        raw = match.group(1) or match.group(2)
        values[field.name] = (raw.lower() == "true" if field.type is bool
                              or field.type == "bool" else int(raw))
    return cls(**values)

  @classmethod
  def from_file(cls, path: str) -> "BatchingParameters":
    with open(path) as f:
      return cls.from_text(f.read())


class _Task:

  def __init__(self, key, inputs: Inputs, rows: int):
    self.key, self.inputs, self.rows = key, inputs, rows
    self.done = threading.Event()
    self.outputs: Optional[Inputs] = None
    self.error: Optional[BaseException] = None


def _batch_key(inputs: Inputs, pad: bool):
  """What must be equal for two requests to share a model call, or None if
  this request cannot be batched (no common leading dimension)."""
  rows = {v.shape[0] for v in inputs.values() if v.ndim > 0}
  if len(rows) != 1:
    return None, 0
  parts = []
  for name in sorted(inputs):
    value = inputs[name]
    if value.ndim == 0:
      parts.append((name, value.item()))
    elif not (pad and name in PADDABLE_INPUTS):
      parts.append((name, value.dtype.kind, value.shape[1:]))
    else:
      parts.append((name, value.dtype.kind, value.ndim))
  return tuple(parts), rows.pop()


def _pad_value(array: np.ndarray):
  return "" if array.dtype.kind in "OSU" else 0


def merge(parts: List[Inputs]) -> Inputs:
  """Concatenates requests on axis 0, padding trailing dims to the widest."""
  merged = {}
  for name, first in parts[0].items():
    if first.ndim == 0:
      merged[name] = first
      continue
    arrays = [p[name] for p in parts]
    widest = np.max([a.shape for a in arrays], axis=0)
    padded = []
    for a in arrays:
      grow = [(0, 0)] + [(0, int(w - s)) for w, s in
                         zip(widest[1:], a.shape[1:])]
      padded.append(np.pad(a, grow, constant_values=_pad_value(a))
                    if any(g[1] for g in grow) else a)
    merged[name] = np.concatenate(padded, axis=0)
  return merged


class Batcher:
  """Queues requests per (version, signature, shape key) and runs batches on
  `num_batch_threads` threads.

  Args:
    params: TF Serving's batching knobs.
  """

  def __init__(self, params: BatchingParameters):
    self.params = params
    self._queue: List[_Task] = []
    self._cond = threading.Condition()
    self._stopped = False
    self.batches_run = self.requests_run = 0  # For tests and logs.
    self._threads = [threading.Thread(target=self._loop, daemon=True)
                     for _ in range(params.num_batch_threads)]
    for t in self._threads:
      t.start()

  def run(self, runner: Callable[[Inputs], Inputs], runner_key,
          inputs: Inputs) -> Inputs:
    """Runs `runner(inputs)` inside a batch; blocks until it is done.

    `runner_key` identifies the model version and signature; only tasks with
    the same key share a call to that task's runner.
    """
    key, rows = _batch_key(inputs, self.params.pad_variable_length_inputs)
    if key is None or rows > self.params.max_batch_size:
      return runner(inputs)
    task = _Task((runner_key, key), inputs, rows)
    task.runner = runner
    with self._cond:
      if len(self._queue) >= (self.params.max_enqueued_batches *
                              self.params.max_batch_size):
        raise protocol.ProtocolError(grpc.StatusCode.UNAVAILABLE,
                                     "The batch scheduling queue is full")
      task.enqueued = time.monotonic()
      self._queue.append(task)
      self._cond.notify_all()
    task.done.wait()
    if task.error is not None:
      raise task.error
    return task.outputs

  def stop(self):
    with self._cond:
      self._stopped = True
      self._cond.notify_all()

  def _take_batch(self) -> Optional[List[_Task]]:
    """Waits for the oldest task's timeout or a full batch of its key.

    Another batch thread may take the oldest task while this one waits;
    then this one starts over with the new oldest.
    """
    timeout = self.params.batch_timeout_micros / 1e6
    with self._cond:
      while True:
        while not self._queue and not self._stopped:
          self._cond.wait()
        if self._stopped:
          return None
        first = self._queue[0]
        deadline = first.enqueued + timeout
        while first in self._queue:
          same = [t for t in self._queue if t.key == first.key]
          rows = sum(t.rows for t in same)
          left = deadline - time.monotonic()
          if rows >= self.params.max_batch_size or left <= 0 or self._stopped:
            break
          self._cond.wait(left)
        if first not in self._queue:
          continue  # Taken by another batch thread.
        batch, total = [], 0
        for t in [t for t in self._queue if t.key == first.key]:
          if total + t.rows > self.params.max_batch_size:
            break
          batch.append(t)
          total += t.rows
        for t in batch:
          self._queue.remove(t)
        return batch

  def _loop(self):
    while True:
      batch = self._take_batch()
      if batch is None:
        return
      self._execute(batch)

  def _execute(self, batch: List[_Task]):
    runner = batch[0].runner
    self.batches_run += 1
    self.requests_run += len(batch)
    try:
      if len(batch) == 1:
        outputs = [runner(batch[0].inputs)]
      else:
        merged = runner(merge([t.inputs for t in batch]))
        offsets = np.cumsum([0] + [t.rows for t in batch])
        outputs = [{k: v[offsets[i]:offsets[i + 1]] for k, v in merged.items()}
                   for i in range(len(batch))]
      for task, out in zip(batch, outputs):
        task.outputs = out
    except Exception as e:  # pylint: disable=broad-except
      if len(batch) == 1:
        batch[0].error = e
      else:  # Re-run alone, so only the request at fault sees the error.
        for task in batch:
          try:
            task.outputs = runner(task.inputs)
          except Exception as single:  # pylint: disable=broad-except
            task.error = single
    finally:
      for task in batch:
        task.done.set()
