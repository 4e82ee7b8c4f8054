"""TF Serving's --model_config_file for `recsys serve`: several models on
one port, each with its version policy and version labels.

The file is TF Serving's own ModelServerConfig text proto, parsed with its
own proto, so one file serves `tensorflow_model_server` and `recsys serve`
alike. Relative base paths resolve against the working directory, as TF
Serving's do.
"""
import dataclasses
import os
from typing import Dict, FrozenSet, List, Optional

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """One served model.

  Attributes:
    name: the name requests address.
    base_path: folder of integer-named versions.
    latest: keep the newest `latest` versions (TF Serving's default, 1);
      0 with `specific` None means every version (`all {}`).
    specific: exactly these versions (`specific { versions: ... }`).
    labels: label -> version (`version_labels`), e.g. stable and canary.
  """
  name: str
  base_path: str
  latest: int = 1
  specific: Optional[FrozenSet[int]] = None
  labels: Dict[str, int] = dataclasses.field(default_factory=dict)

  def wanted(self, available: List[int]) -> List[int]:
    """Which of the `available` versions (ascending) to serve."""
    if self.specific is not None:
      return [v for v in available if v in self.specific]
    return available[-self.latest:] if self.latest else list(available)


def read(path: str) -> List[ModelSpec]:
  """Parses a ModelServerConfig text proto into ModelSpecs.

  Raises:
    ValueError: a malformed file, no models, a duplicate name, or a label
      that names a version the policy never serves.
  """
  with open(path) as f:
    try:
      config = text_format.Parse(f.read(),
                                 model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
      raise ValueError(f"{path}: not a TF Serving model config: {e}") from None
  specs = []
  for model in config.model_config_list.config:
    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    specific = (frozenset(policy.specific.versions) if kind == "specific"
                else None)
    latest = {"latest": policy.latest.num_versions or 1, "all": 0,
              "specific": 0, None: 1}[kind]
    labels = dict(model.version_labels)
    if specific is not None:
      stray = {k: v for k, v in labels.items() if v not in specific}
      if stray:
        raise ValueError(f"{path}: model {model.name!r} labels {stray} name "
                         f"versions outside its specific policy")
    specs.append(ModelSpec(model.name, os.path.abspath(model.base_path),
                           latest, specific, labels))
  if not specs:
    raise ValueError(f"{path}: model_config_list has no models")
  names = [s.name for s in specs]
  if len(set(names)) != len(names):
    raise ValueError(f"{path}: model names repeat: {names}")
  return specs
