"""TF Serving's request/response conversion, shared by client and server.

Both sides of the wire use these functions, so the client, the local server
and the in-process model cannot drift apart. Everything here speaks
tensorflow_serving.apis protos exactly as TF Serving defines them.
"""
from typing import Dict, List, Mapping, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from trainer import features


class ProtocolError(Exception):
  """A request TF Serving would refuse; carries the gRPC status code."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message


def user_inputs(users: Sequence[Mapping]) -> Dict[str, np.ndarray]:
  """Users as dicts (user_id, age, gender, occupation, history) -> the
  recommend/rank signature inputs; histories are padded with ""."""
  histories = [[str(h) for h in (u.get("history") or [])] for u in users]
  width = max([len(h) for h in histories] + [1])
  return {
      features.USER_ID: np.array([str(u.get("user_id", "")) for u in users],
                                 object),
      features.AGE: np.array([int(u.get("age") or 0) for u in users], np.int64),
      features.GENDER: np.array([str(u.get("gender", "")) for u in users],
                                object),
      features.OCCUPATION: np.array([str(u.get("occupation", ""))
                                     for u in users], object),
      features.HISTORY: np.array([h + [""] * (width - len(h))
                                  for h in histories], object),
  }


def search_inputs(queries: Sequence, k: int,
                  users: Optional[Sequence[Mapping]] = None):
  """(signature, inputs) for `search`, or `personalized_search` when users
  (one per query) are given."""
  inputs = {"query": np.array(list(queries), object), "k": np.int32(k)}
  if users is None:
    return features.SEARCH_SIGNATURE, inputs
  if len(users) != len(queries):
    raise ValueError(f"{len(queries)} queries but {len(users)} users")
  return (features.PERSONALIZED_SEARCH_SIGNATURE,
          dict(inputs, **user_inputs(users)))


def top_k_rows(outputs: Mapping[str, np.ndarray]) -> List[Dict]:
  """item_ids/titles/scores [B, k] -> one {item_ids, titles, scores} per row."""
  def text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
  ids, titles = outputs["item_ids"], outputs["titles"]
  scores = np.asarray(outputs["scores"])
  return [{"item_ids": [text(i) for i in ids[r]],
           "titles": [text(t) for t in titles[r]],
           "scores": scores[r].tolist()} for r in range(len(ids))]


def predict_request(model_name: str, signature: str,
                    inputs: Mapping[str, np.ndarray],
                    version: Optional[int] = None) -> predict_pb2.PredictRequest:
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature
  if version is not None:
    request.model_spec.version.value = version
  for key, value in inputs.items():
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
  return request


def response_outputs(response: predict_pb2.PredictResponse
                     ) -> Dict[str, np.ndarray]:
  return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def check_inputs(function, tensors: Mapping[str, np.ndarray]
                 ) -> Dict[str, np.ndarray]:
  """Checks names, dtypes and ranks against a concrete signature function;
  mismatches raise ProtocolError(INVALID_ARGUMENT) naming the fix."""
  specs = function.structured_input_signature[1]
  missing = sorted(set(specs) - set(tensors))
  unknown = sorted(set(tensors) - set(specs))
  if missing or unknown:
    raise ProtocolError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Signature expects inputs {sorted(specs)}; missing {missing}, "
        f"unexpected {unknown}")
  out = {}
  for name, spec in specs.items():
    value = np.asarray(tensors[name])
    if spec.dtype == tf.string:
      ok = value.dtype.kind in ("O", "S", "U")
    else:
      ok = value.dtype.kind in "iu" if spec.dtype.is_integer else \
          value.dtype.kind in "fiu"
    if not ok:
      raise ProtocolError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f"Input {name!r} must be {spec.dtype.name}, got {value.dtype}")
    if spec.shape.rank is not None and value.ndim != spec.shape.rank:
      raise ProtocolError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f"Input {name!r} must have rank {spec.shape.rank} "
          f"(shape {spec.shape}), got shape {list(value.shape)}")
    out[name] = value
  return out


def signature_inputs(function, tensors: Mapping[str, np.ndarray]
                     ) -> Dict[str, tf.Tensor]:
  """check_inputs, then converts to the signature's dtypes."""
  specs = function.structured_input_signature[1]
  return {name: tf.constant(value, dtype=specs[name].dtype)
          for name, value in check_inputs(function, tensors).items()}
