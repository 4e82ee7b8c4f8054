"""`recsys check-servable DIR`: will stock TF Serving load this SavedModel?

tensorflow/serving:2.16.1 links core TF 2.16 and TF Text 2.12.1 (its
workspace pins text-2.12.1). Our exported stock model needs exactly two ops
outside core TF, the in-graph tokenizer's; both exist in TF Text 2.12.1 with
unchanged kernels. Any other unknown op means a server without it fails to
load the model (`Op type not registered`), so the Pusher runs this check
before it publishes. ScaNN's ops are allowed only in the ScaNN twin, which
needs a ScaNN-enabled server.
"""
import dataclasses
import functools
import os
import subprocess
import sys
from typing import FrozenSet, List, Set

from tensorflow.core.protobuf import saved_model_pb2

# TF Text ops that stock TF Serving 2.16.1 links (TF Text 2.12.1).
STOCK_TF_TEXT_OPS = frozenset({"FastBertNormalize",
                               "FastWordpieceTokenizeWithOffsets"})
SCANN_OP_PREFIX = "Scann>"
SCANN_SUFFIX = "_scann"  # contract.SCANN_SUFFIX, without importing TF


@dataclasses.dataclass
class Report:
  path: str
  ops: Set[str]           # every op type in the graph and its functions
  tf_text: Set[str]       # non-core ops TF Serving's TF Text provides
  scann: Set[str]         # ScaNN's ops (twin only)
  unknown: Set[str]       # anything else outside core TF

  @property
  def stock_servable(self) -> bool:
    return not self.unknown and not self.scann

  @property
  def is_scann_twin(self) -> bool:
    return any(part.endswith(SCANN_SUFFIX) for part in
               os.path.normpath(self.path).split(os.sep))

  @property
  def ok(self) -> bool:
    """Servable by the server it is meant for: stock TF Serving, or for
    the ScaNN twin a ScaNN-enabled one."""
    return not self.unknown and (not self.scann or self.is_scann_twin)

  def lines(self) -> List[str]:
    verdict = ("loads in stock TF Serving 2.16.1" if self.stock_servable else
               "will NOT load in TF Serving: unknown ops" if self.unknown
               else "needs a ScaNN-enabled TF Serving (serving/deploy/"
               "Dockerfile.scann)" if self.is_scann_twin else
               "will NOT load in stock TF Serving: ScaNN ops outside the "
               "ScaNN twin")
    out = [f"{self.path}: {len(self.ops)} op types; {verdict}"]
    if self.tf_text:
      out.append(f"  TF Text ops (in stock TF Serving): "
                 f"{', '.join(sorted(self.tf_text))}")
    if self.scann:
      out.append(f"  ScaNN ops: {', '.join(sorted(self.scann))}")
    if self.unknown:
      out.append(f"  not in core TF, TF Text 2.12.1 or ScaNN: "
                 f"{', '.join(sorted(self.unknown))}")
    return out


def op_types(saved_model_dir: str) -> Set[str]:
  """Op types of every graph node and every function body node."""
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  ops = set()
  for meta in proto.meta_graphs:
    ops.update(n.op for n in meta.graph_def.node)
    for function in meta.graph_def.library.function:
      ops.update(n.op for n in function.node_def)
  # Calls to library functions appear as ops named after the function.
  functions = {f.signature.name for meta in proto.meta_graphs
               for f in meta.graph_def.library.function}
  return ops - functions


@functools.lru_cache(maxsize=1)
def core_tf_ops() -> FrozenSet[str]:
  """Every op core TF registers, asked once per process of a fresh
  interpreter that has imported nothing but TensorFlow (this process may
  have loaded TF Text or ScaNN, which register theirs)."""
  code = ("from tensorflow.core.framework import op_def_pb2\n"
          "from tensorflow.python.client import pywrap_tf_session as c\n"
          "ops = op_def_pb2.OpList()\n"
          "ops.ParseFromString(c.TF_GetBuffer(c.TF_GetAllOpList()))\n"
          "print('\\n'.join(o.name for o in ops.op))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  return frozenset(out.stdout.split())


def not_in_core_tf(ops: Set[str]) -> Set[str]:
  """The ops of `ops` that core TF does not register."""
  return set(ops) - core_tf_ops()


def check(path: str) -> Report:
  """Checks a SavedModel directory, or the newest version under a model
  base path."""
  saved_model_dir = path
  if not os.path.exists(os.path.join(path, "saved_model.pb")):
    versions = sorted((int(n) for n in os.listdir(path) if n.isdigit()))
    if not versions:
      raise FileNotFoundError(f"{path}: no saved_model.pb and no version "
                              "folders")
    saved_model_dir = os.path.join(path, str(versions[-1]))
  ops = op_types(saved_model_dir)
  outside = not_in_core_tf(ops)
  scann = {o for o in outside if o.startswith(SCANN_OP_PREFIX)}
  tf_text = outside & STOCK_TF_TEXT_OPS
  return Report(saved_model_dir, ops, tf_text, scann,
                outside - scann - tf_text)
