"""TF Serving's REST API (/v1/models/...) in front of `recsys serve`'s models.

Same routes, bodies and error shape as tensorflow_model_server's REST port:
GET status and metadata, POST :predict in the row ("instances") or columnar
("inputs") format. Errors are the gRPC side's ProtocolErrors, mapped to HTTP
statuses in one table.
"""
import json
import re
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import HTTPServer
from typing import Dict

import grpc
import numpy as np
from absl import logging
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_status_pb2

from serving import explorer
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
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 500,
}


def http_status(code: grpc.StatusCode) -> int:
  return _HTTP_STATUS.get(code, 400)


# Deeper JSON than this is refused (a request body is at most a batch of
# lists of lists; Python's parser would recurse until RecursionError).
MAX_JSON_DEPTH = 32


class BoundedHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
  """HTTPServer with at most `workers` connections handled at once; others
  wait in the listen backlog instead of each getting a thread."""
  daemon_threads = True

  def __init__(self, address, handler, workers: int = 8):
    self._slots = threading.BoundedSemaphore(workers)
    super().__init__(address, handler)

  def process_request(self, request, client_address):
    self._slots.acquire()
    try:
      super().process_request(request, client_address)
    except Exception:
      self._slots.release()
      raise

  def process_request_thread(self, request, client_address):
    try:
      super().process_request_thread(request, client_address)
    finally:
      self._slots.release()


def _depth_ok(text: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
  """Nesting depth of a JSON text (brackets outside strings) <= limit."""
  depth, in_string, escaped = 0, False, False
  for byte in text:
    if in_string:
      if escaped:
        escaped = False
      elif byte == 0x5C:  # backslash
        escaped = True
      elif byte == 0x22:
        in_string = False
    elif byte == 0x22:
      in_string = True
    elif byte in (0x5B, 0x7B):
      depth += 1
      if depth > limit:
        return False
    elif byte in (0x5D, 0x7D):
      depth -= 1
  return True


def handler_class(server):
  """A BaseHTTPRequestHandler class serving `server` (serving.server.Server):
  status, metadata and predict (row and columnar formats), and the explorer
  page (serving/explorer.py) at / and /explorer/."""

  class Handler(BaseHTTPRequestHandler):

    # Seconds a connection may take to send its request (slow clients
    # cannot hold a worker forever).
    timeout = server.rest_read_timeout

    def log_message(self, *args):  # Quiet; errors are logged below.
      pass

    def _send(self, code: int, body: Dict, headers: Dict[str, str] = None):
      self._send_bytes(code, "application/json", json.dumps(body).encode(),
                       headers)

    def _send_bytes(self, code: int, content_type: str, data: bytes,
                    headers: Dict[str, str] = None):
      self.send_response(code)
      self.send_header("Content-Type", content_type)
      self.send_header("Content-Length", str(len(data)))
      for key, value in (headers or {}).items():
        self.send_header(key, value)
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
      page = explorer.handle(self.path, server.explorer_data,
                             sorted(server.managers))
      if page is not None:  # The explorer page and its data, not the API.
        self._send_bytes(*page, headers=explorer.HEADERS)
        return
      try:
        name, version, label, verb = self._route()
        if verb == "/metadata":
          # GetModelMetadataResponse as JSON, as TF Serving's REST port
          # writes it: proto field names, int64 as strings.
          model = server.model(name, version, label)
          self._send(200, {
              "model_spec": {"name": name, "signature_name": "",
                             "version": str(model.version)},
              "metadata": {"signature_def": json_format.MessageToDict(
                  model.signature_def_map(),
                  preserving_proto_field_name=True)}})
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

    def _content_length(self) -> int:
      """The declared body size: 400 if missing-but-malformed or negative,
      413 above the server's limit (nothing is read in either case)."""
      raw = self.headers.get("Content-Length") or "0"
      try:
        length = int(raw)
      except ValueError:
        length = -1
      if length < 0:
        self.close_connection = True
        raise protocol.ProtocolError(grpc.StatusCode.INVALID_ARGUMENT,
                                     f"Malformed Content-Length: {raw[:40]!r}")
      if length > server.max_request_bytes:
        self.close_connection = True
        self._discard(min(length, 4 * server.max_request_bytes))
        raise protocol.ProtocolError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Request of {length} bytes exceeds the limit of "
            f"{server.max_request_bytes}")
      return length

    def _discard(self, length: int) -> None:
      """Reads and drops a refused body while it keeps arriving, so a client
      still sending gets our 413 rather than a broken pipe. A pause of 5 s
      or the read deadline ends it. (A 1 s pause used to: a client in a busy
      process stalled that long and got a broken pipe in a test run.)"""
      deadline = time.monotonic() + (self.timeout or 30.0)
      try:
        self.connection.settimeout(min(5.0, self.timeout or 5.0))
        while length > 0 and time.monotonic() < deadline:
          chunk = self.rfile.read(min(length, 1 << 20))
          if not chunk:
            return
          length -= len(chunk)
      except OSError:
        return

    def do_POST(self):
      try:
        name, version, label, verb = self._route()
        if verb != ":predict":
          raise protocol.ProtocolError(grpc.StatusCode.INVALID_ARGUMENT,
                                       "Only :predict accepts POST")
        length = self._content_length()
        try:
          data = self.rfile.read(length)
        except OSError:  # The read deadline passed.
          self.close_connection = True
          raise protocol.ProtocolError(
              grpc.StatusCode.INVALID_ARGUMENT,
              f"Request body not received within {self.timeout}s") from None
        if len(data) < length:
          raise protocol.ProtocolError(
              grpc.StatusCode.INVALID_ARGUMENT,
              f"Request body ended after {len(data)} of {length} bytes")
        if not _depth_ok(data):
          raise protocol.ProtocolError(
              grpc.StatusCode.INVALID_ARGUMENT,
              f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
          body = json.loads(data or b"{}")
        except (ValueError, RecursionError) as e:
          raise protocol.ProtocolError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"Malformed JSON: {e}") from None
        if not isinstance(body, dict):
          raise protocol.ProtocolError(grpc.StatusCode.INVALID_ARGUMENT,
                                       "Request body must be a JSON object")
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
        if not isinstance(signature, str):
          raise protocol.ProtocolError(grpc.StatusCode.INVALID_ARGUMENT,
                                       "\"signature_name\" must be a string")
        outputs = model.run(signature, inputs, server.batcher,
                            server.max_request_rows)
        as_json = {k: _jsonable(v) for k, v in outputs.items()}
        # Which version answered (the body stays TF Serving's).
        answered = {"X-Model-Version": str(model.version)}
        if "instances" in body:
          n = len(next(iter(as_json.values())))
          self._send(200, {"predictions": [
              {k: v[i] for k, v in as_json.items()} for i in range(n)]},
                     answered)
        else:
          self._send(200, {"outputs": as_json}, answered)
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
