"""ItemTextEmbedder: the frozen BERT vector of every catalogue item, once.

Encoding the catalogue is the only BERT work training needs (the encoder is
frozen), and it depends only on the catalogue and the encoder, not on any
hyperparameter. As its own component it runs apart from training: a new
Trainer run (other steps, weights, dimensions) never re-encodes, and lineage
in ML Metadata says which vectors a model saw.

Each run gets the previous artifact (the pipeline's
`latest_item_embeddings_resolver`), which stores its texts beside their
vectors: every text it already encoded with the same encoder is copied, and
only new or edited items' texts run through BERT. That makes the next
period's catalogue cheap, where TFX's cache could not help (new examples,
new input); the price is that this input changes every run, so the
component is never a cache hit itself, and a re-run copies every vector.
"""
import time

from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.input_resolution.strategies import latest_artifact_strategy
from tfx.types import artifact
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from trainer import features
from trainer import item_embeddings as embeddings_lib


class ItemEmbeddings(artifact.Artifact):
  """Per-item text vectors (trainer/item_embeddings.py's format)."""
  # "namespace.Name": the form Kubeflow Pipelines v2 needs for custom types.
  TYPE_NAME = "recsys.ItemEmbeddings"


class LatestOrNothing(latest_artifact_strategy.LatestArtifactStrategy):
  """The newest artifact of the channel, or none on a store's first run.

  TFX's LatestArtifactStrategy answers None when there is nothing yet, which
  fails its resolver node: an ERROR traceback on the console and a FAILED
  execution in ML Metadata on every first run, although the embedder, whose
  input is optional, runs fine without it. Kubeflow's v2 compiler accepts
  only TFX's own class (the cluster runs the query), so create_pipeline uses
  this one where the strategy runs in Python (LocalDagRunner)."""

  def resolve_artifacts(self, store, input_dict):
    # The parent's own newest-first selection, without its min-count check.
    return self._resolve(input_dict)


@component
def ItemTextEmbedder(
    examples: InputArtifact[standard_artifacts.Examples],
    item_embeddings: OutputArtifact[ItemEmbeddings],
    text_encoder_dir: Parameter[str],
    max_length: Parameter[int] = 32,
    kinds: Parameter[str] = ",".join(embeddings_lib.KINDS),
    previous_item_embeddings: InputArtifact[ItemEmbeddings] = None) -> None:
  """Encodes the `items` split of `examples` with the encoder in
  `text_encoder_dir`: one vector per item per kind of text (`kinds`),
  taking unchanged texts' vectors from `previous_item_embeddings`."""
  from trainer.text_tower import TextEncoder  # Heavy: only when it runs.
  catalog_uri = artifact_utils.get_split_uri([examples],
                                             features.CATALOG_SPLIT)
  catalog = embeddings_lib.read_catalog(catalog_uri + "/*")
  start = time.time()
  encoder = TextEncoder(text_encoder_dir, max_length)
  settings = {"text_encoder_dir": text_encoder_dir, "max_length": max_length,
              "dim": encoder.dim}
  known = embeddings_lib.reusable_vectors(
      previous_item_embeddings.uri if previous_item_embeddings else None,
      encoder, settings)
  kinds = embeddings_lib.parse_kinds(kinds)
  texts = {kind: embeddings_lib.catalog_texts(catalog, kind)
           for kind in kinds}
  vectors = embeddings_lib.encode_catalog(encoder, catalog, kinds, known,
                                          texts)
  reused = sum(t in known.get(kind, {}) for kind in kinds
               for t in set(texts[kind]))
  distinct = sum(len(set(texts[kind])) for kind in kinds)
  ids = embeddings_lib.catalog_ids(catalog)
  seconds = round(time.time() - start, 1)
  embeddings_lib.write(item_embeddings.uri, ids, vectors,
                       dict(settings, reused_texts=reused,
                            encoded_texts=distinct - reused,
                            seconds=seconds), texts)
  logging.info("ItemTextEmbedder: %d items x %s in %.1fs (%d of %d distinct "
               "texts reused from the previous artifact)", len(ids), kinds,
               seconds, reused, distinct)
