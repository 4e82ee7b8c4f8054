"""TF Serving's REST API (/v1/models/...) in front of `recsys serve`'s models.

Same routes, bodies and error shape as tensorflow_model_server's REST port:
GET status and metadata, POST :predict in the row ("instances") or columnar
("inputs") format. Errors are the gRPC side's ProtocolErrors, mapped to HTTP
statuses in one table.
"""
import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Dict

import grpc
import numpy as np
from absl import logging
from tensorflow_serving.apis import get_model_status_pb2

from serving import protocol

_REST_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>:predict|/metadata)?$")
_STATE_NAMES = {v: k for k, v in
                get_model_status_pb2.ModelVersionStatus.State.items()}
# gRPC status -> HTTP status, as TF Serving's REST front end maps them.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}


def http_status(code: grpc.StatusCode) -> int:
  return _HTTP_STATUS.get(code, 400)


def handler_class(server):
  """A BaseHTTPRequestHandler class serving `server` (serving.server.Server):
  status, metadata and predict (row and columnar formats)."""

  class Handler(BaseHTTPRequestHandler):

    def log_message(self, *args):  # Quiet; errors are logged below.
      pass

    def _send(self, code: int, body: Dict):
      data = json.dumps(body).encode()
      self.send_response(code)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def _route(self):
      match = _REST_PATH.match(self.path)
      if not match:
        raise protocol.ProtocolError(grpc.StatusCode.NOT_FOUND,
                                     f"Malformed request: {self.path}")
      version = match.group("version")
      return (match.group("name"), int(version) if version else None,
              match.group("label"), match.group("verb"))

    def do_GET(self):
      try:
        name, version, label, verb = self._route()
        if verb == "/metadata":
          model = server.model(name, version, label)
          self._send(200, {"model_spec": {"name": name,
                                          "version": str(model.version)},
                           "metadata": {"signature_def": sorted(
                               model.signature_defs)}})
          return
        manager = server.manager_for(name)
        if label:
          version = manager.get(None, label).version
        states = manager.states()
        self._send(200, {"model_version_status": [
            {"version": str(v), "state": _STATE_NAMES[s],
             "status": {"error_code": "OK", "error_message": ""}}
            for v, s in sorted(states.items(), reverse=True)
            if version is None or v == version]})
      except protocol.ProtocolError as e:
        self._send(http_status(e.code), {"error": e.message})

    def do_POST(self):
      try:
        name, version, label, verb = self._route()
        if verb != ":predict":
          raise protocol.ProtocolError(grpc.StatusCode.INVALID_ARGUMENT,
                                       "Only :predict accepts POST")
        length = int(self.headers.get("Content-Length") or 0)
        if length > server.max_request_bytes:
          raise protocol.ProtocolError(
              grpc.StatusCode.RESOURCE_EXHAUSTED,
              f"Request of {length} bytes exceeds the limit of "
              f"{server.max_request_bytes}")
        try:
          body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as e:
          raise protocol.ProtocolError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"Malformed JSON: {e}") from None
        model = server.model(name, version, label)
        signature = body.get("signature_name", "")
        if "instances" in body:
          rows = body["instances"]
          if not isinstance(rows, list) or not rows or not isinstance(
              rows[0], dict):
            raise protocol.ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "\"instances\" must be a non-empty list of objects")
          columns = {k: [r.get(k) for r in rows] for k in rows[0]}
          inputs = {k: np.array(v, dtype=object if _is_text(v) else None)
                    for k, v in columns.items()}
        elif "inputs" in body and isinstance(body["inputs"], dict):
          inputs = {k: np.array(v, dtype=object if _is_text(v) else None)
                    for k, v in body["inputs"].items()}
        else:
          raise protocol.ProtocolError(
              grpc.StatusCode.INVALID_ARGUMENT,
              "Request body must have \"instances\" or \"inputs\"")
        outputs = model.run(signature, inputs, server.batcher)
        as_json = {k: _jsonable(v) for k, v in outputs.items()}
        if "instances" in body:
          n = len(next(iter(as_json.values())))
          self._send(200, {"predictions": [
              {k: v[i] for k, v in as_json.items()} for i in range(n)]})
        else:
          self._send(200, {"outputs": as_json})
      except protocol.ProtocolError as e:
        self._send(http_status(e.code), {"error": e.message})
      except Exception as e:  # Never let a request kill the server.
        logging.exception("REST predict failed")
        self._send(500, {"error": str(e).split("\n")[0]})

  return Handler


def _is_text(value) -> bool:
  while isinstance(value, list) and value:
    value = value[0]
  return isinstance(value, str)


def _jsonable(array: np.ndarray):
  if array.dtype.kind in ("O", "S"):
    return np.vectorize(lambda b: b.decode("utf-8", "replace")
                        if isinstance(b, bytes) else b, otypes=[object])(
                            array).tolist()
  return array.tolist()
