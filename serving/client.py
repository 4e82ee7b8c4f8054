"""Client for TF Serving's gRPC PredictionService (and its REST API).

Talks to any server that speaks the protocol: a real `tensorflow_model_server`
or `recsys serve`. Errors come back as exceptions that say what to do.
"""
import json
import urllib.error
import urllib.request
from typing import Dict, List, Mapping, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import protocol
from trainer import contract


class ServingError(RuntimeError):
  """Base of the client's errors; `code` is the gRPC status (the HTTP
  status for the REST client)."""

  def __init__(self, message: str, code=None):
    super().__init__(message)
    self.code = code


class ServerUnavailable(ServingError):
  pass


class ModelNotFound(ServingError):
  pass


class BadRequest(ServingError):
  pass


def _raise(error: grpc.RpcError, address: str, model: str):
  code, details = error.code(), error.details()
  if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
    if "Servable not found" in (details or ""):
      raise ModelNotFound(f"Model {model!r} has no loaded version on "
                          f"{address}: {details}", code) from None
    raise ServerUnavailable(
        f"No TF Serving answer from {address} ({code.name}): is the server "
        f"running? Start one with `recsys serve`.", code) from None
  if code == grpc.StatusCode.NOT_FOUND:
    raise ModelNotFound(f"{details} (server {address})", code) from None
  raise BadRequest(f"{code.name}: {details}", code) from None


class RecommenderClient:
  """gRPC client: recommend, search, rank, status and metadata.

  Args:
    address: host:port of the gRPC endpoint.
    model_name: the model's name in the server's model config.
    timeout: seconds per call.
    version_label: a label of the server's model config ("stable",
      "canary") to address instead of the newest version (A/B splits).
  """

  def __init__(self, address: str = "127.0.0.1:8500",
               model_name: str = "recommender", timeout: float = 10.0,
               max_message_bytes: int = 64 << 20,
               version_label: Optional[str] = None):
    self.address, self.model_name, self.timeout = address, model_name, timeout
    self.version_label = version_label
    self._input_specs: Dict[str, Dict] = {}
    self._signatures: Optional[frozenset] = None
    self._channel = grpc.insecure_channel(address, options=[
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes)])
    self._predict = prediction_service_pb2_grpc.PredictionServiceStub(
        self._channel)
    self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

  def close(self):
    self._channel.close()

  def predict(self, signature: str, inputs: Mapping[str, np.ndarray],
              version: Optional[int] = None) -> Dict[str, np.ndarray]:
    """One Predict call. Optional inputs the served signature declares but
    `inputs` lack (business rules) are sent empty, because stock TF Serving
    requires every input; a model exported before they existed gets none."""
    inputs = contract.complete_inputs(signature, self._specs(signature),
                                      inputs)
    request = contract.predict_request(self.model_name, signature, inputs,
                                       version, self.version_label)
    try:
      response = self._predict.Predict(request, timeout=self.timeout)
    except grpc.RpcError as e:
      _raise(e, self.address, self.model_name)
    return protocol.response_outputs(response)

  def _specs(self, signature: str) -> Dict:
    """The served signature's inputs as TensorSpecs; {} where the server
    gives no metadata or does not serve the signature."""
    name = signature or contract.SERVING_DEFAULT
    if name not in self._input_specs:
      try:
        self._read_metadata()
      except ServingError:
        return {}
      self._input_specs.setdefault(name, {})
    return self._input_specs[name]

  def _read_metadata(self) -> None:
    """One metadata call for every signature's name and inputs, made on the
    first request and again only for a signature not seen in it."""
    defs = self._signature_defs().signature_def
    self._signatures = frozenset(defs)
    for name, found in defs.items():
      self._input_specs[name] = {
          key: tf.TensorSpec(tf.TensorShape(info.tensor_shape),
                             tf.as_dtype(info.dtype), key)
          for key, info in found.inputs.items()}

  def recommend(self, users: Sequence[Mapping], k: int = 10,
                exclude_seen: bool = True,
                rules: Optional[Dict] = None,
                explain: bool = True) -> List[Dict]:
    """Top k per user, each item with because_item_ids/because_titles/
    reason when the model explains. `rules`: contract.rule_inputs'
    keyword arguments (exclude, genres, years), the same for every user.
    `explain=False` asks the fast signature, which skips the reasons (a
    model without it answers with them)."""
    served = None if explain else self._served_signatures()
    return protocol.top_k_rows(self.predict(*contract.recommend_request(
        users, k, exclude_seen, rules, explain, served)))

  def _served_signatures(self) -> frozenset:
    """The served model's signature names, as the first metadata call
    gave them."""
    if self._signatures is None:
      self._read_metadata()
    return self._signatures

  def search(self, queries: Sequence[str], k: int = 10,
             users: Optional[Sequence[Dict]] = None,
             rules: Optional[Dict] = None) -> List[Dict]:
    """Free-text search; with `users` (one per query, recommend's fields),
    each query's results are re-ordered by that user's taste."""
    return protocol.top_k_rows(self.predict(*contract.search_request(
        queries, k, users, rules)))

  def similar(self, items: Sequence, k: int = 10,
              rules: Optional[Dict] = None) -> List[Dict]:
    """Nearest items to each item: an id, or a dict with item_id and, for
    an item the model has never seen, title/year/genres."""
    return protocol.top_k_rows(self.predict(*contract.similar_request(
        items, k, rules)))

  def status(self) -> List[Dict]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = self.model_name
    try:
      response = self._models.GetModelStatus(request, timeout=self.timeout)
    except grpc.RpcError as e:
      _raise(e, self.address, self.model_name)
    return [{"version": s.version,
             "state": get_model_status_pb2.ModelVersionStatus.State.Name(
                 s.state)} for s in response.model_version_status]

  def signatures(self) -> List[str]:
    return sorted(self._signature_defs().signature_def)

  def _signature_defs(self) -> get_model_metadata_pb2.SignatureDefMap:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = self.model_name
    if self.version_label:
      request.model_spec.version_label = self.version_label
    request.metadata_field.append("signature_def")
    try:
      response = self._predict.GetModelMetadata(request, timeout=self.timeout)
    except grpc.RpcError as e:
      _raise(e, self.address, self.model_name)
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    return defs


class RestClient:
  """The same calls over TF Serving's REST API (columnar "inputs" format)."""

  def __init__(self, base_url: str = "http://127.0.0.1:8501",
               model_name: str = "recommender", timeout: float = 10.0):
    self.base_url, self.model_name = base_url.rstrip("/"), model_name
    self.timeout = timeout
    self._signatures: Optional[frozenset] = None

  def _call(self, path: str, body: Optional[Dict] = None) -> Dict:
    url = f"{self.base_url}/v1/models/{self.model_name}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as r:
        return json.loads(r.read())
    except urllib.error.HTTPError as e:
      try:
        message = json.loads(e.read() or b"{}").get("error", str(e))
      except ValueError:
        message = str(e)
      if e.code == 404:
        raise ModelNotFound(message, e.code) from None
      raise BadRequest(message, e.code) from None
    except urllib.error.URLError as e:
      raise ServerUnavailable(f"No answer from {self.base_url}: {e.reason}. "
                              "Is the server running?") from None

  def _top_k(self, signature: str, inputs: Mapping[str, np.ndarray]
             ) -> List[Dict]:
    body = {"signature_name": signature,
            "inputs": {key: np.asarray(v).tolist()
                       for key, v in inputs.items()}}
    out = self._call(":predict", body)["outputs"]
    return protocol.top_k_rows({key: np.array(v, dtype=object
                                              if key != contract.SCORES
                                              else None)
                                for key, v in out.items()})

  def recommend(self, users: Sequence[Mapping], k: int = 10,
                exclude_seen: bool = True, rules: Optional[Dict] = None,
                explain: bool = True) -> List[Dict]:
    """As RecommenderClient.recommend, over REST (the server fills the
    rule inputs left out)."""
    served = None if explain else self._served_signatures()
    return self._top_k(*contract.recommend_request(
        users, k, exclude_seen, rules, explain, served))

  def _served_signatures(self) -> frozenset:
    """The served model's signature names, asked once per client."""
    if self._signatures is None:
      self._signatures = frozenset(self.signatures())
    return self._signatures

  def signatures(self) -> List[str]:
    """The served model's signature names, from its metadata."""
    defs = self._call("/metadata")["metadata"]["signature_def"]
    return sorted(defs.get("signature_def", {}))

  def search(self, queries: Sequence[str], k: int = 10,
             users: Optional[Sequence[Dict]] = None,
             rules: Optional[Dict] = None) -> List[Dict]:
    """As RecommenderClient.search, over REST."""
    return self._top_k(*contract.search_request(queries, k, users, rules))

  def similar(self, items: Sequence, k: int = 10,
              rules: Optional[Dict] = None) -> List[Dict]:
    """As RecommenderClient.similar, over REST (the server fills the
    optional inputs left out)."""
    return self._top_k(*contract.similar_request(items, k, rules))

  def status(self) -> List[Dict]:
    return self._call("")["model_version_status"]
