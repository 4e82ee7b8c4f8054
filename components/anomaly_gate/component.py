"""AnomalyGate: ExampleValidator reports anomalies; this stops the run.

ExampleValidator only writes an anomalies artifact, so a pipeline would go on
to train on data that broke the schema. The gate reads that artifact and
fails with a readable list; Transform is wired to run after it.
"""
import os
from typing import Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies
from tfx.utils import io_utils


class SchemaAnomalies(RuntimeError):
  """The data broke the curated schema; the message lists how."""


def describe(anomalies_by_split: Dict[str, object]) -> List[str]:
  """One line per anomaly: split, feature, short and long description."""
  lines = []
  for split, anomalies in sorted(anomalies_by_split.items()):
    for feature, info in sorted(anomalies.anomaly_info.items()):
      lines.append(f"[{split}] {feature}: {info.short_description} -- "
                   f"{info.description}")
    if anomalies.HasField("dataset_anomaly_info"):
      info = anomalies.dataset_anomaly_info
      lines.append(f"[{split}] dataset: {info.description}")
  return lines


@component
def AnomalyGate(anomalies: InputArtifact[ExampleAnomalies]) -> None:
  """Raises SchemaAnomalies if any split has an anomaly."""
  by_split = {}
  for split in artifact_utils.decode_split_names(anomalies.split_names):
    path = os.path.join(anomalies.uri, f"Split-{split}", "SchemaDiff.pb")
    by_split[split] = anomalies_pb2.Anomalies.FromString(
        io_utils.read_bytes_file(path))
  lines = describe(by_split)
  if lines:
    raise SchemaAnomalies("The data does not match schemas/schema.pbtxt:\n" +
                          "\n".join(lines))
