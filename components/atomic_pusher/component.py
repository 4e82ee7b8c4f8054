"""AtomicPusher: TFX's Pusher, but a half-copied model is never visible
(see executor.py)."""
from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec

from components.atomic_pusher import executor


class AtomicPusher(Pusher):
  """Same arguments as tfx.components.Pusher (filesystem destinations)."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
