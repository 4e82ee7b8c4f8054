"""AtomicPusher's executor: publish a blessed model as the next version.

The stock Pusher copies straight into `<base>/<version>/`, so TF Serving's
file-system poller can see a version directory while it is still being
written. TF Serving only loads directories whose names are integers, so we
copy into `<base>/.tmp-<version>/` and rename it into place: on a local or
POSIX file system the rename is atomic and the poller sees all or nothing.
"""
import os
import time
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

from trainer import contract


def publish_version(model_dir: str, base_directory: str, version: int) -> str:
  """Copies `model_dir` to `<base>/<version>` atomically; returns that path.

  Versions must increase (TF Serving serves the highest), so a version at or
  below one already published moves past the highest.
  """
  fileio.makedirs(base_directory)
  version = max([version] + [v + 1 for v in contract.versions(base_directory)])
  final = os.path.join(base_directory, str(version))
  staging = os.path.join(base_directory, f".tmp-{version}")
  # A push killed mid-copy leaves its staging folder: never visible to a
  # server (not an integer), removed here by the next push.
  for name in fileio.listdir(base_directory):
    if name.strip("/").startswith(".tmp-"):
      fileio.rmtree(os.path.join(base_directory, name.strip("/")))
  io_utils.copy_dir(model_dir, staging)
  fileio.rename(staging, final)
  return final


class NotServable(RuntimeError):
  """The model uses ops its server would not have; nothing was pushed."""


def check_servable(model_dirs: List[str]) -> None:
  """Raises NotServable unless each SavedModel loads in the server it is
  meant for (serving/servable_check.py); local paths only (the op check
  reads the graph with the local file API)."""
  from serving import servable_check
  problems = []
  for path in model_dirs:
    if "://" in path:
      logging.info("servable check skipped for remote %s", path)
      continue
    report = servable_check.check(path)
    logging.info("%s", "\n".join(report.lines()))
    if not report.ok:
      problems.extend(report.lines())
  if problems:
    raise NotServable("Not pushed: the model would not load in TF "
                      "Serving:\n" + "\n".join(problems))


class Executor(pusher_executor.Executor):
  """Pusher's executor with an atomic, monotonic publish (and the ScaNN
  twin, when the Trainer exported one, under the same version number)."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Publishes the model if blessed; marks the PushedModel either way.

    Args:
      input_dict: `model` and `model_blessing`, as the stock Pusher.
      output_dict: `pushed_model`.
      exec_properties: `push_destination` (JSON PushDestination with a
        filesystem base_directory: TF Serving's model base path).
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      logging.warning("Model not blessed by the Evaluator: nothing pushed.")
      self._MarkNotPushed(model_push)
      return
    model_path = self.GetModelPath(input_dict)
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
        destination)
    base = destination.filesystem.base_directory
    twin = contract.scann_twin(model_path)
    check_servable([model_path] + ([twin] if fileio.exists(twin) else []))
    serving_path = publish_version(model_path, base, int(time.time()))
    logging.info("Model pushed to %s", serving_path)
    if fileio.exists(twin):
      version = int(os.path.basename(serving_path))
      logging.info("ScaNN variant pushed to %s", publish_version(
          twin, contract.scann_twin(base), version))
    io_utils.copy_dir(model_path, model_push.uri)
    self._MarkPushed(model_push, pushed_destination=serving_path,
                     pushed_version=os.path.basename(serving_path))
