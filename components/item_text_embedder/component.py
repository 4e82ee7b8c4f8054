"""ItemTextEmbedder: the frozen BERT vector of every catalogue item, once.

Encoding the catalogue is the only BERT work training needs (the encoder is
frozen), and it depends only on the catalogue and the encoder, not on any
hyperparameter. As its own component it is cached by TFX: a new Trainer run
(other steps, weights, dimensions) reuses the artifact instead of
re-encoding, and lineage in ML Metadata says which vectors a model saw.
"""
import time

from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from trainer import features
from trainer import item_embeddings as embeddings_lib


class ItemEmbeddings(artifact.Artifact):
  """Per-item text vectors (trainer/item_embeddings.py's format)."""
  # "namespace.Name": the form Kubeflow Pipelines v2 needs for custom types.
  TYPE_NAME = "recsys.ItemEmbeddings"


@component
def ItemTextEmbedder(
    examples: InputArtifact[standard_artifacts.Examples],
    item_embeddings: OutputArtifact[ItemEmbeddings],
    text_encoder_dir: Parameter[str],
    max_length: Parameter[int] = 32,
    kinds: Parameter[str] = ",".join(embeddings_lib.KINDS)) -> None:
  """Encodes the `items` split of `examples` with the encoder in
  `text_encoder_dir`: one vector per item per kind of text (`kinds`)."""
  from trainer.text_tower import TextEncoder  # Heavy: only when it runs.
  catalog_uri = artifact_utils.get_split_uri([examples],
                                             features.CATALOG_SPLIT)
  catalog = embeddings_lib.read_catalog(catalog_uri + "/*")
  start = time.time()
  encoder = TextEncoder(text_encoder_dir, max_length)
  vectors = embeddings_lib.encode_catalog(
      encoder, catalog, embeddings_lib.parse_kinds(kinds))
  ids = embeddings_lib.catalog_ids(catalog)
  embeddings_lib.write(
      item_embeddings.uri, ids, vectors,
      {"text_encoder_dir": text_encoder_dir, "max_length": max_length,
       "dim": encoder.dim})
  logging.info("ItemTextEmbedder: %d items x %s in %.1fs",
               len(ids), kinds,
               time.time() - start)
