"""Many model calls at once, or one cache clear alone.

Unloading a version frees it for real only after `gc.collect()` and the
eager runtime's `clear_kernel_cache()` (server.release_memory). Neither may
run beside a model call: clearing resets the runtime's kernel cache, device
cache and step container, which a call on another thread is using at that
moment, and collecting the old version runs its functions' finalizers, which
remove them from the same runtime. A request thread that raced them could
crash the whole process. Requests therefore hold the gate shared, the clear
holds it exclusive: it waits for calls in flight, and calls that arrive
meanwhile wait for it (a pause of a collection, once per swap).
"""
import contextlib
import threading


class ExecutionGate:
  """A readers-writer lock that prefers the writer, so a steady stream of
  requests cannot postpone a clear forever."""

  def __init__(self):
    self._changed = threading.Condition()
    self._calls = 0
    self._clearing = False

  @contextlib.contextmanager
  def call(self):
    """Held by every model call; many at once."""
    with self._changed:
      while self._clearing:
        self._changed.wait()
      self._calls += 1
    try:
      yield
    finally:
      with self._changed:
        self._calls -= 1
        if not self._calls:
          self._changed.notify_all()

  @contextlib.contextmanager
  def exclusive(self):
    """Held alone: no model call runs until it is released."""
    with self._changed:
      while self._clearing:
        self._changed.wait()
      self._clearing = True
      while self._calls:
        self._changed.wait()
    try:
      yield
    finally:
      with self._changed:
        self._clearing = False
        self._changed.notify_all()
