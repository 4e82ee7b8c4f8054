"""`recsys serve`: a local server that speaks TF Serving's protocol exactly.

No `tensorflow_model_server` binary can be installed on our machines, so for
development and tests this serves the same model-base-path layout over the
same APIs: gRPC PredictionService (Predict, GetModelMetadata) and ModelService
(GetModelStatus) on one port, and the REST API (/v1/models/..., in
serving/rest.py) on another.
It picks up new version directories as they appear and unloads old ones
(keeps the newest `versions_to_keep`, TF Serving's default policy keeps 1).
A request never takes the server down: bad requests get the status code TF
Serving would return (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED).
"""
import ctypes
import gc
import os
import threading
import time
from concurrent import futures
from typing import Dict, List, Optional, Tuple

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

try:  # Registers ScaNN's ops, so the ScaNN twin loads too.
  import scann  # noqa: F401
except ImportError:  # pragma: no cover - scann is in the lock file
  scann = None
from absl import logging
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import batching
from serving import explorer
from serving import gate
from serving import model_config
from serving import protocol
from serving import rest
from trainer import contract

_State = get_model_status_pb2.ModelVersionStatus.State
_GRPC_CODES = {code.value[0]: code.value for code in grpc.StatusCode}
# Every model call in this process runs inside it; release_memory alone.
EXECUTION = gate.ExecutionGate()


class LoadedVersion:
  """One servable version: the loaded SavedModel and its SignatureDefs."""

  def __init__(self, path: str, version: int):
    self.version = version
    self.loaded = tf.saved_model.load(path)
    meta = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
      meta.ParseFromString(f.read())
    self.signature_defs = meta.meta_graphs[0].signature_def
    self.warmed_up = self._warm_up(path)

  def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
    """What GetModelMetadata answers for "signature_def", on both ports."""
    defs = get_model_metadata_pb2.SignatureDefMap()
    for name, sig in self.signature_defs.items():
      defs.signature_def[name].CopyFrom(sig)
    return defs

  def _warm_up(self, path: str) -> int:
    """Replays assets.extra/tf_serving_warmup_requests, as TF Serving does."""
    records = os.path.join(path, contract.WARMUP_PATH)
    if not tf.io.gfile.exists(records):
      return 0
    count = 0
    for record in tf.data.TFRecordDataset(records):
      log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
      request = log.predict_log.request
      self.run(request.model_spec.signature_name,
               {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
      count += 1
    return count

  def signature(self, name: str):
    name = name or contract.SERVING_DEFAULT
    if name not in self.loaded.signatures:
      raise protocol.ProtocolError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f"Serving signature name: \"{name}\" not found in signature def; "
          f"available: {', '.join(sorted(self.loaded.signatures))}")
    return self.loaded.signatures[name]

  def run(self, signature: str, inputs: Dict[str, np.ndarray],
          batcher: Optional[batching.Batcher] = None,
          max_rows: int = contract.DEFAULT_MAX_REQUEST_ROWS
          ) -> Dict[str, np.ndarray]:
    """Checks the request alone, then runs it (inside a batch if given)."""
    function = self.signature(signature)
    checked = protocol.check_inputs(
        function, inputs, signature or contract.SERVING_DEFAULT)
    rows = max((v.shape[0] for v in checked.values() if v.ndim), default=0)
    if rows > max_rows:
      raise protocol.ProtocolError(
          grpc.StatusCode.RESOURCE_EXHAUSTED,
          f"Request has {rows} rows; this server takes at most {max_rows} "
          "per request (--max-request-rows)")
    execute = lambda arrays: self._call(function, arrays)  # noqa: E731
    if batcher is None:
      return execute(checked)
    return batcher.run(execute,
                       (id(self), signature or contract.SERVING_DEFAULT),
                       checked)

  @staticmethod
  def _call(function, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    try:
      with EXECUTION.call():
        outputs = function(**protocol.as_tensors(function, arrays))
    except (tf.errors.InvalidArgumentError, ValueError, TypeError,
            OverflowError) as e:
      raise protocol.ProtocolError(grpc.StatusCode.INVALID_ARGUMENT,
                                   protocol.model_error_message(e)) from None
    except tf.errors.OpError as e:  # TF's codes are gRPC's codes.
      raise protocol.ProtocolError(grpc.StatusCode(_GRPC_CODES[e.error_code]),
                                   protocol.model_error_message(e)) from None
    return {k: v.numpy() for k, v in outputs.items()}


def release_memory() -> None:
  """Frees an unloaded version for real: a loaded SavedModel's objects form
  reference cycles that only the cycle collector frees, and glibc keeps
  freed heap in its arenas unless asked to return it (malloc_trim). Without
  this a server that swaps versions grows by about a model's size per swap
  (measured by `make bench-soak`). Both steps touch the eager runtime that
  request threads are using, so no model call runs meanwhile (gate.py)."""
  from tensorflow.python.eager import context
  with EXECUTION.exclusive():
    gc.collect()
    # The eager runtime caches a kernel per function and op it ran, keyed by
    # fingerprint: entries of unloaded versions would stay forever.
    context.context().clear_kernel_cache()
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):  # not glibc: nothing to trim
    pass


class ModelManager:
  """Watches one model base path and keeps the versions its policy wants
  loaded (the newest `versions_to_keep` by default)."""

  def __init__(self, name: str, base_path: str, versions_to_keep: int = 1,
               spec: Optional[model_config.ModelSpec] = None):
    self.spec = spec or model_config.ModelSpec(name, base_path,
                                               versions_to_keep)
    self.name, self.base_path = self.spec.name, self.spec.base_path
    self._versions: Dict[int, LoadedVersion] = {}
    self._states: Dict[int, int] = {}
    self._lock = threading.Lock()

  def poll(self) -> None:
    """Loads new versions (fully, before they are visible), unloads old."""
    wanted = self.spec.wanted(contract.versions(self.base_path))
    for version in wanted:
      if version in self._versions or self._states.get(version) == _State.END:
        continue
      with self._lock:
        self._states[version] = _State.LOADING
      try:
        loaded = LoadedVersion(os.path.join(self.base_path, str(version)),
                               version)
      except Exception as e:  # A broken version must not stop the server.
        logging.error("Failed to load %s version %d: %s", self.name, version, e)
        with self._lock:
          self._states[version] = _State.END
        continue
      with self._lock:
        self._versions[version] = loaded
        self._states[version] = _State.AVAILABLE
      logging.info("Loaded %s version %d", self.name, version)
    unloaded = False
    with self._lock:
      for version in list(self._versions):
        if version not in wanted:
          del self._versions[version]
          self._states[version] = _State.END
          unloaded = True
          logging.info("Unloaded %s version %d", self.name, version)
    if unloaded:
      release_memory()

  def get(self, version: Optional[int] = None,
          label: Optional[str] = None) -> LoadedVersion:
    """The newest loaded version, or the one `version` or `label` names."""
    if version is None and label:
      if label not in self.spec.labels:
        raise protocol.ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Unrecognized servable version label: {label} (model "
            f"{self.name} has {sorted(self.spec.labels) or 'no labels'})")
      version = self.spec.labels[label]
    with self._lock:
      if not self._versions:
        raise protocol.ProtocolError(
            grpc.StatusCode.UNAVAILABLE,
            f"Servable not found for request: Latest({self.name})")
      if version is None:
        return self._versions[max(self._versions)]
      if version not in self._versions:
        raise protocol.ProtocolError(
            grpc.StatusCode.NOT_FOUND,
            f"Servable not found for request: Specific({self.name}, {version})")
      return self._versions[version]

  def states(self) -> Dict[int, int]:
    with self._lock:
      return dict(self._states)


class Server:
  """Owns the model managers, the gRPC and REST endpoints and the poller.

  Serves one model (model_name, base_path), or every model of a TF Serving
  model config (`models`, from serving/model_config.py) on the same ports.
  """

  def __init__(self, model_name: str = contract.MODEL_NAME,
               base_path: str = "", host: str = "127.0.0.1",
               grpc_port: int = contract.DEFAULT_GRPC_PORT,
               rest_port: Optional[int] = contract.DEFAULT_REST_PORT,
               poll_seconds: float = 1.0, versions_to_keep: int = 1,
               max_request_bytes: int = contract.DEFAULT_MAX_REQUEST_BYTES,
               workers: int = 8,
               max_request_rows: int = contract.DEFAULT_MAX_REQUEST_ROWS,
               rest_read_timeout: float = 30.0,
               batching_parameters: Optional[
                   batching.BatchingParameters] = None,
               models: Optional[List[model_config.ModelSpec]] = None,
               explorer_data: Optional[explorer.ExplorerData] = None):
    """batching_parameters: merge concurrent requests into one model call
    (TF Serving's --enable_batching); None serves each request alone.
    models: serve these instead of model_name/base_path.
    explorer_data: users and titles for the explorer page at / (REST)."""
    self.explorer_data = explorer_data
    self.batcher = (batching.Batcher(batching_parameters)
                    if batching_parameters is not None else None)
    if models is None:
      models = [model_config.ModelSpec(model_name, base_path,
                                       versions_to_keep)]
    self.managers = {spec.name: ModelManager(spec.name, spec.base_path,
                                             spec=spec) for spec in models}
    # The first model: what single-model callers and logs mean.
    self.manager = self.managers[models[0].name]
    self.model_name = models[0].name
    self.max_request_bytes = max_request_bytes
    self.max_request_rows = max_request_rows
    self.rest_read_timeout = rest_read_timeout
    self._poll_seconds = poll_seconds
    self._stop = threading.Event()
    self._poller: Optional[threading.Thread] = None
    self.grpc = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", max_request_bytes)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(self), self.grpc)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        _ModelService(self), self.grpc)
    self.grpc_port = self.grpc.add_insecure_port(f"{host}:{grpc_port}")
    self.rest = None
    if rest_port is not None:
      self.rest = rest.BoundedHTTPServer((host, rest_port),
                                         rest.handler_class(self), workers)
      self.rest_port = self.rest.server_address[1]

  def manager_for(self, name: str) -> ModelManager:
    if name not in self.managers:
      raise protocol.ProtocolError(
          grpc.StatusCode.NOT_FOUND,
          f"Servable not found for request: Latest({name}); this server "
          f"serves {', '.join(repr(n) for n in self.managers)}")
    return self.managers[name]

  def model(self, name: str, version: Optional[int],
            label: Optional[str] = None) -> LoadedVersion:
    return self.manager_for(name).get(version, label)

  def poll(self) -> None:
    for manager in self.managers.values():
      manager.poll()

  def start(self) -> "Server":
    self.poll()
    self.grpc.start()
    self._poller = threading.Thread(target=self._poll_loop, daemon=True)
    self._poller.start()
    if self.rest is not None:
      threading.Thread(target=self.rest.serve_forever, daemon=True).start()
    return self

  def _poll_loop(self):
    while not self._stop.wait(self._poll_seconds):
      try:
        self.poll()
      except Exception as e:  # Keep polling whatever happens on disk.
        logging.error("version poll failed: %s", e)

  def stop(self):
    """Stops serving; a poll under way (a load, an unload) finishes first,
    so nothing of this server runs after stop returns."""
    self._stop.set()
    if self._poller is not None:
      self._poller.join()
    self.grpc.stop(grace=1)
    if self.batcher is not None:
      self.batcher.stop()
    if self.rest is not None:
      self.rest.shutdown()


def _version(spec) -> Tuple[Optional[int], Optional[str]]:
  """(version, label) a ModelSpec asks for; (None, None): the newest."""
  choice = spec.WhichOneof("version_choice")
  if choice == "version":
    return spec.version.value, None
  return None, (spec.version_label if choice == "version_label" else None)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):

  def __init__(self, server: Server):
    self._server = server

  def Predict(self, request, context):
    try:
      model = self._server.model(request.model_spec.name,
                                 *_version(request.model_spec))
      inputs = {}
      for key, value in request.inputs.items():
        try:
          inputs[key] = tf.make_ndarray(value)
        except Exception as e:  # A malformed TensorProto.
          raise protocol.ProtocolError(
              grpc.StatusCode.INVALID_ARGUMENT,
              f"Input {key!r} is not a valid tensor: {e}") from None
      if context.time_remaining() is not None and \
          context.time_remaining() <= 0:
        raise protocol.ProtocolError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                     "Deadline exceeded before the model ran")
      outputs = model.run(request.model_spec.signature_name, inputs,
                          self._server.batcher, self._server.max_request_rows)
      response = predict_pb2.PredictResponse()
      response.model_spec.name = request.model_spec.name
      response.model_spec.version.value = model.version
      response.model_spec.signature_name = (request.model_spec.signature_name
                                            or contract.SERVING_DEFAULT)
      keep = set(request.output_filter) or set(outputs)
      for key, value in outputs.items():
        if key in keep:
          response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
      return response
    except protocol.ProtocolError as e:
      context.abort(e.code, e.message)
    except Exception as e:  # Never let a request kill the server.
      logging.exception("Predict failed")
      context.abort(grpc.StatusCode.INTERNAL, str(e).split("\n")[0])

  def GetModelMetadata(self, request, context):
    try:
      if list(request.metadata_field) != ["signature_def"]:
        raise protocol.ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Metadata field must be [\"signature_def\"]")
      model = self._server.model(request.model_spec.name,
                                 *_version(request.model_spec))
      response = get_model_metadata_pb2.GetModelMetadataResponse()
      response.model_spec.name = request.model_spec.name
      response.model_spec.version.value = model.version
      response.metadata["signature_def"].Pack(model.signature_def_map())
      return response
    except protocol.ProtocolError as e:
      context.abort(e.code, e.message)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):

  def __init__(self, server: Server):
    self._server = server

  def GetModelStatus(self, request, context):
    if request.model_spec.name not in self._server.managers:
      context.abort(grpc.StatusCode.NOT_FOUND,
                    f"Could not find any versions of model "
                    f"{request.model_spec.name}")
    manager = self._server.managers[request.model_spec.name]
    states = manager.states()
    wanted, label = _version(request.model_spec)
    if label:
      wanted = manager.spec.labels.get(label, -1)
    if wanted is not None:
      if wanted not in states:
        context.abort(grpc.StatusCode.NOT_FOUND,
                      f"Could not find version {wanted} of model "
                      f"{request.model_spec.name}")
      states = {wanted: states[wanted]}
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state in sorted(states.items(), reverse=True):
      status = response.model_version_status.add()
      status.version = version
      status.state = state
      status.status.error_code = 0
    return response


def explorer_url(host: str, port: int) -> str:
  host = "127.0.0.1" if host in ("", "0.0.0.0") else host
  return f"http://{host}:{port}/"


def serve_forever(server: Server) -> None:
  server.start()
  for manager in server.managers.values():
    logging.info("Serving %s from %s (labels %s)", manager.name,
                 manager.base_path, manager.spec.labels or "none")
  logging.info("gRPC port %d, REST port %s", server.grpc_port,
               getattr(server, "rest_port", None))
  if server.rest is not None:
    host, port = server.rest.server_address[:2]
    print(f"Explorer page: {explorer_url(host, port)}", flush=True)
  try:
    while True:
      time.sleep(3600)
  except KeyboardInterrupt:
    server.stop()
