"""TF Serving's request/response conversion, shared by client and server.

Both sides of the wire use these functions, so the client, the local server
and the in-process model cannot drift apart. Requests are built by
trainer/contract.py (the warm-up records use the same code); this module
checks them on the server side and turns responses back into rows.
"""
import re
from typing import Dict, List, Mapping

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from trainer import contract


class ProtocolError(Exception):
  """A request TF Serving would refuse; carries the gRPC status code."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message


_TEXT_OUTPUTS = (contract.ITEM_IDS, contract.TITLES,
                 contract.BECAUSE_ITEM_IDS, contract.BECAUSE_TITLES,
                 contract.REASON)


def top_k_rows(outputs: Mapping[str, np.ndarray]) -> List[Dict]:
  """item_ids/titles/scores [B, k] (and the explanation outputs, when the
  signature has them) -> one dict of lists per row. Slots a business rule
  left empty ("" ids) are dropped."""
  def text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
  ids = outputs[contract.ITEM_IDS]
  scores = np.asarray(outputs[contract.SCORES])
  rows = []
  for r in range(len(ids)):
    keep = [j for j, i in enumerate(ids[r]) if text(i)]
    row = {name: [text(outputs[name][r][j]) for j in keep]
           for name in _TEXT_OUTPUTS if name in outputs}
    row[contract.SCORES] = [float(scores[r][j]) for j in keep]
    rows.append(row)
  return rows


def model_error_message(error: Exception) -> str:
  """The line of a TF error a caller can act on: the assertion's own
  message (the model's input checks) rather than "Graph execution error"."""
  lines = [line.strip() for line in str(error).split("\n") if line.strip()]
  for line in lines:
    if line.startswith("assertion failed:"):
      # tf.debugging.Assert prints its message and data as "[a] [b c]".
      parts = re.findall(r"\[([^\[\]]*)\]", line) or [line[17:]]
      return " ".join(p.strip() for p in parts).replace("\\'", "'")
  return lines[0] if lines else type(error).__name__


def response_outputs(response: predict_pb2.PredictResponse
                     ) -> Dict[str, np.ndarray]:
  return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def check_inputs(function, tensors: Mapping[str, np.ndarray],
                 signature: str = "") -> Dict[str, np.ndarray]:
  """Checks names, dtypes and ranks against a concrete signature function;
  mismatches raise ProtocolError(INVALID_ARGUMENT) naming the fix. Optional
  inputs of `signature` (business rules; see contract.optional_inputs) that
  are left out get their empty value, so older clients keep working."""
  specs = function.structured_input_signature[1]
  tensors = contract.complete_inputs(signature, specs, tensors)
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
    if value.size == 0 and value.ndim:  # JSON's [[]] has no dtype
      value = value.astype(object if spec.dtype == tf.string
                           else spec.dtype.as_numpy_dtype)
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


def as_tensors(function, arrays: Mapping[str, np.ndarray]
               ) -> Dict[str, tf.Tensor]:
  """Checked arrays -> tensors of the signature's dtypes."""
  specs = function.structured_input_signature[1]
  return {name: tf.constant(value, dtype=specs[name].dtype)
          for name, value in arrays.items()}

