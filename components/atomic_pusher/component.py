"""AtomicPusher: TFX's Pusher, but a half-copied model is never visible.

The stock Pusher copies straight into `<base>/<version>/`, so TF Serving's
file-system poller can see a version directory while it is still being
written. TF Serving only loads directories whose names are integers, so we
copy into `<base>/.tmp-<version>/` and rename it into place: on a local or
POSIX file system the rename is atomic and the poller sees all or nothing.
"""
import os
import time

from absl import logging
from tfx.components import Pusher
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

from trainer import export


def scann_base_directory(base_directory: str) -> str:
  return base_directory.rstrip("/") + "_scann"


def publish_version(model_dir: str, base_directory: str, version: int) -> str:
  """Copies `model_dir` to `<base>/<version>` atomically; returns that path.

  Versions must increase (TF Serving serves the highest), so a clash with an
  existing directory moves to the next free number.
  """
  fileio.makedirs(base_directory)
  while fileio.exists(os.path.join(base_directory, str(version))):
    version += 1
  final = os.path.join(base_directory, str(version))
  staging = os.path.join(base_directory, f".tmp-{version}")
  if fileio.exists(staging):
    fileio.rmtree(staging)
  io_utils.copy_dir(model_dir, staging)
  fileio.rename(staging, final)
  return final


class Executor(pusher_executor.Executor):

  def Do(self, input_dict, output_dict, exec_properties):
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
    serving_path = publish_version(model_path, base, int(time.time()))
    logging.info("Model pushed to %s", serving_path)
    twin = model_path.rstrip("/") + export.SCANN_SUFFIX
    if fileio.exists(twin):
      version = int(os.path.basename(serving_path))
      logging.info("ScaNN variant pushed to %s", publish_version(
          twin, scann_base_directory(base), version))
    io_utils.copy_dir(model_path, model_push.uri)
    self._MarkPushed(model_push, pushed_destination=serving_path,
                     pushed_version=os.path.basename(serving_path))


class AtomicPusher(Pusher):
  """Same arguments as tfx.components.Pusher (filesystem destinations)."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
