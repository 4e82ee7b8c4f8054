"""MovieLensExampleGen: the interaction log joined with item and user tables."""
from typing import Optional, Union

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components.movielens_example_gen import executor


class MovieLensExampleGenSpec(types.ComponentSpec):
  PARAMETERS = {
      executor.DATA_DIR: ExecutionParameter(type=str),
      executor.TRAIN_UNTIL: ExecutionParameter(type=int, optional=True),
      executor.EVAL_UNTIL: ExecutionParameter(type=int, optional=True),
      executor.EVAL_FRACTION: ExecutionParameter(type=float),
      executor.MAX_REJECT_FRACTION: ExecutionParameter(type=float),
      executor.MAX_HISTORY: ExecutionParameter(type=int),
      executor.MIN_TIMESTAMP: ExecutionParameter(type=int, optional=True),
      executor.MAX_TIMESTAMP: ExecutionParameter(type=int, optional=True),
      executor.MIN_TRAIN_USERS: ExecutionParameter(type=int, optional=True),
      executor.INPUT_FINGERPRINT: ExecutionParameter(type=str, optional=True),
      executor.EXAMPLES_FORMAT: ExecutionParameter(type=str),
  }
  INPUTS = {}
  OUTPUTS = {
      executor.EXAMPLES: ChannelParameter(type=standard_artifacts.Examples)}


class MovieLensExampleGen(base_beam_component.BaseBeamComponent):
  """Reads MovieLens (any supported layout) and writes time-split examples.

  Output splits: `train` (interactions up to the cutoff), `eval` (after it) and
  `items` (one example per catalogue item). Each interaction carries the
  user's earlier items as `history_item_ids`, computed without future leakage.

  Args:
    data_dir: folder holding one of the layouts in layouts.py (local or GCS).
    train_until: last Unix timestamp in training; default: the last
      `eval_fraction` of the time span is eval.
    eval_until: last Unix timestamp of the eval split (default: everything
      after train_until): a replayed period k evaluates on period k only.
    eval_fraction: share of the time span held out when train_until is unset.
    max_reject_fraction: stop the run when more rows than this are malformed.
    max_history: how many earlier items each example keeps.
    input_fingerprint: changes when the input files change, so a re-run over
      new data is not served from the cache.

  The executor's output format (executor.EXAMPLES_FORMAT_VERSION) is an
  execution property too, so examples an older writer laid out are not
  served from the cache either.
  """

  SPEC_CLASS = MovieLensExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self,
               data_dir: Union[str, data_types.RuntimeParameter],
               train_until: Optional[
                   Union[int, data_types.RuntimeParameter]] = None,
               eval_until: Optional[
                   Union[int, data_types.RuntimeParameter]] = None,
               eval_fraction: float = 0.1,
               max_reject_fraction: float = 0.01,
               max_history: int = 50,
               min_timestamp: Optional[int] = None,
               max_timestamp: Optional[int] = None,
               min_train_users: Optional[int] = None,
               input_fingerprint: Optional[str] = None):
    super().__init__(MovieLensExampleGenSpec(
        data_dir=data_dir, train_until=train_until, eval_until=eval_until,
        eval_fraction=eval_fraction, max_reject_fraction=max_reject_fraction,
        max_history=max_history, min_timestamp=min_timestamp,
        max_timestamp=max_timestamp, min_train_users=min_train_users,
        input_fingerprint=input_fingerprint,
        examples_format=executor.EXAMPLES_FORMAT_VERSION,
        examples=types.Channel(type=standard_artifacts.Examples)))
