"""CuratedSchemaGen: TFX's ImportSchemaGen, re-run when the schema changes.

ImportSchemaGen's only execution property is the schema file's path, and
TFX's cache keys on properties and inputs, not on what a path holds: after
an edit to schemas/schema.pbtxt, a pipeline root that had run before kept
validating (and transforming) against the old schema. This component runs
ImportSchemaGen's own executor and adds the file's content hash as a second
execution property, so an edited schema is imported again.
"""
import hashlib
from typing import Optional

from tfx import types
from tfx.components.schema_gen.import_schema_gen import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter

SCHEMA_SHA256 = "schema_sha256"


class CuratedSchemaGenSpec(standard_component_specs.ImportSchemaGenSpec):
  PARAMETERS = {
      **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
      SCHEMA_SHA256: ExecutionParameter(type=str),
  }


def content_hash(path: str) -> str:
  with fileio.open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


class CuratedSchemaGen(component.ImportSchemaGen):
  """Imports the curated schema at `schema_file`.

  Args:
    schema_file: the schema where the component runs.
    schema_sha256: its content hash; default: `schema_file` is read here,
      when the pipeline is built. A compile for another machine (Kubeflow,
      whose image holds the file) passes the hash of the copy it ships.
  """

  SPEC_CLASS = CuratedSchemaGenSpec

  def __init__(self, schema_file: str, schema_sha256: Optional[str] = None):
    spec = CuratedSchemaGenSpec(
        schema_file=schema_file,
        schema_sha256=schema_sha256 or content_hash(schema_file),
        schema=types.Channel(type=standard_artifacts.Schema))
    # BaseComponent's __init__: ImportSchemaGen's would build its own spec.
    super(component.ImportSchemaGen, self).__init__(spec=spec)
