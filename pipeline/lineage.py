"""What one pipeline run read and wrote, from ML Metadata (not file names).

Every local run is a `pipeline_run` context in the MLMD store; its
executions (cached ones too: they link to the artifacts they reused) and
their input/output events name each artifact by component and key. The run
report is built from this, so it describes exactly the run it names.
"""
import dataclasses
import os
from typing import Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_RUN_CONTEXT = "pipeline_run"
_NODE_CONTEXT = "node"  # named "<pipeline name>.<node id>"
_INPUTS = (metadata_store_pb2.Event.INPUT,
           metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT,
            metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclasses.dataclass
class Step:
  """One component's execution in the run: its state and artifact URIs by
  input/output key (e.g. outputs["blessing"], inputs["baseline_model"])."""
  component: str  # the component's type, e.g. Resolver
  node_id: str  # its id in the pipeline, e.g. latest_blessed_model_resolver
  state: str
  inputs: Dict[str, List[str]]
  outputs: Dict[str, List[str]]
  output_properties: Dict[str, Dict[str, object]]


@dataclasses.dataclass
class Run:
  name: str  # the run id, e.g. 2026-11-24T11:05:02.123456
  started: float  # seconds since the epoch
  steps: Dict[str, Step]  # by node id: one pipeline may hold two nodes
                          # of a type (our two Resolvers)

  def output(self, component: str, key: str) -> Optional[str]:
    step = self.steps.get(component)
    uris = step.outputs.get(key) if step else None
    return uris[0] if uris else None

  def input(self, component: str, key: str) -> Optional[str]:
    step = self.steps.get(component)
    uris = step.inputs.get(key) if step else None
    return uris[0] if uris else None


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
  """The local run's store. Raises LookupError if there is none (rather
  than creating an empty one)."""
  if not os.path.exists(metadata_path):
    raise LookupError(f"No ML Metadata store at {metadata_path}: run "
                      "`recsys pipeline run` first.")
  return metadata_store.MetadataStore(metadata_store_pb2.ConnectionConfig(
      sqlite=metadata_store_pb2.SqliteMetadataSourceConfig(
          filename_uri=metadata_path)))


def latest_run(metadata_path: str) -> Run:
  """The newest pipeline run recorded in the store at `metadata_path`.

  Raises:
    LookupError: when the store has no run yet.
  """
  store = open_store(metadata_path)
  contexts = _run_contexts(store)
  if not contexts:
    raise LookupError(f"No pipeline run recorded in {metadata_path}: run "
                      "`recsys pipeline run` first.")
  return _read_run(store, contexts[-1])


def all_runs(metadata_path: str) -> List[Run]:
  """Every pipeline run in the store, oldest first (none: [])."""
  store = open_store(metadata_path)
  return [_read_run(store, c) for c in _run_contexts(store)]


def _run_contexts(store) -> list:
  return sorted(store.get_contexts_by_type(_RUN_CONTEXT),
                key=lambda c: (c.create_time_since_epoch, c.id))


def _read_run(store, context) -> Run:
  types = {t.id: t.name.split(".")[-1] for t in store.get_execution_types()}
  node_type = store.get_context_type(_NODE_CONTEXT).id
  states = metadata_store_pb2.Execution.State.Name
  steps = {}
  for execution in sorted(store.get_executions_by_context(context.id),
                          key=lambda e: e.id):
    events = store.get_events_by_execution_ids([execution.id])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(
        [e.artifact_id for e in events])}
    component = types[execution.type_id]
    step = Step(component, _node_id(store, execution.id, node_type, component),
                states(execution.last_known_state), {}, {}, {})
    for event in events:
      key = event.path.steps[0].key if event.path.steps else ""
      artifact = artifacts[event.artifact_id]
      if event.type in _INPUTS:
        step.inputs.setdefault(key, []).append(artifact.uri)
      elif event.type in _OUTPUTS:
        step.outputs.setdefault(key, []).append(artifact.uri)
        step.output_properties[key] = {
            k: _value(v) for k, v in artifact.custom_properties.items()}
    steps[step.node_id] = step
  return Run(context.name, context.create_time_since_epoch / 1000.0, steps)


def _node_id(store, execution_id: int, node_type: int, fallback: str) -> str:
  """The execution's node id, from its node context; the component type for
  an execution recorded without one."""
  for context in store.get_contexts_by_execution(execution_id):
    if context.type_id == node_type:
      return context.name.split(".", 1)[-1]
  return fallback


def _value(value: metadata_store_pb2.Value):
  kind = value.WhichOneof("value")
  return getattr(value, kind) if kind else None
