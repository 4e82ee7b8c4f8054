"""The item catalogue the Trainer indexes, read once and passed as one object.

Training needs the catalogue three ways: by catalogue row (to index every
item, including those nobody rated before the cutoff), by Transform's item
vocabulary (the model's text tables are gathered by vocabulary index) and as
text vectors (frozen BERT, from ItemTextEmbedder or encoded here). `Catalog`
holds all three so no step re-reads the vocabulary or the split.
"""
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import features
from trainer import item_embeddings
from trainer import preprocessing
from trainer.text_tower import TextEncoder
from trainer.text_tower import lower_states


@dataclasses.dataclass
class Catalog:
  """Every catalogue item, in catalogue order.

  Attributes:
    raw: the `items` split parsed with the item features' raw spec ([N, 1]
      scalars, sparse genres): what the Transform graph takes.
    vocabulary: Transform's item vocabulary (index i = model row i).
    text: {kind: [N, text_dim] float32} frozen BERT vectors per kind of text
      (see item_embeddings.KINDS); empty without the text tower.
  """
  raw: Dict[str, tf.Tensor]
  vocabulary: List[str]
  text: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  @property
  def ids(self) -> np.ndarray:
    """[N] item ids (bytes)."""
    return self.raw[features.ITEM_ID].numpy().reshape(-1)

  @property
  def titles(self) -> np.ndarray:
    return self.raw[features.TITLE].numpy().reshape(-1)

  @property
  def years(self) -> np.ndarray:
    """[N] int64 release years (0 unknown)."""
    return self.raw[features.YEAR].numpy().reshape(-1)

  @property
  def genres(self) -> np.ndarray:
    """[N, G] genre names, "" pads."""
    return tf.sparse.to_dense(self.raw[features.GENRES],
                              default_value=b"").numpy()

  def __len__(self) -> int:
    return int(self.raw[features.ITEM_ID].shape[0])

  def by_vocabulary(self, rows: np.ndarray) -> np.ndarray:
    """Catalogue-ordered rows [N, ...] -> [vocabulary + OOV, ...] by
    vocabulary index; the OOV row and items not in the catalogue are 0."""
    position = {item: i for i, item in
                enumerate(item_embeddings.catalog_ids(self.raw))}
    table = np.zeros([len(self.vocabulary) + preprocessing.OOV_BUCKETS,
                      *rows.shape[1:]], rows.dtype)
    for index, item in enumerate(self.vocabulary):
      if item in position:
        table[index] = rows[position[item]]
    return table

  def text_tables(self, search_queries: str
                  ) -> Tuple[np.ndarray, List[np.ndarray]]:
    """(full-text table, [one table per search-query kind]), each by
    vocabulary index: what RecommenderModel gathers from."""
    kinds = item_embeddings.parse_kinds(search_queries)
    tables = {k: self.by_vocabulary(self.text[k])
              for k in {"item_text", *kinds}}
    return tables["item_text"], [tables[k] for k in kinds]

  def fine_tuning_states(self, encoder: TextEncoder, layers: int
                         ) -> Tuple[np.ndarray, np.ndarray]:
    """Token states of every item's text below the top `layers` blocks and
    their masks, by catalogue row (computed once per run)."""
    return lower_states(
        encoder, item_embeddings.catalog_texts(self.raw, "item_text"),
        skip_top=layers)


def item_vocabulary(tft_output: tft.TFTransformOutput) -> List[str]:
  return [v.decode() for v in
          tft_output.vocabulary_by_name(features.ITEM_VOCAB)]


def load(catalog_pattern: str, tft_output: tft.TFTransformOutput,
         encoder: Optional[TextEncoder], kinds: Sequence[str] = (),
         embeddings_uri: Optional[str] = None) -> Catalog:
  """Reads the `items` split and, with an encoder, its text vectors (from
  ItemTextEmbedder's artifact at `embeddings_uri` when given).

  Raises:
    FileNotFoundError: no catalogue examples match `catalog_pattern`.
    ValueError: the embeddings artifact was made from another catalogue.
  """
  raw = item_embeddings.read_catalog(catalog_pattern)
  text = {}
  if encoder is not None:
    text = item_embeddings.load_or_encode(embeddings_uri, encoder, raw, kinds)
  return Catalog(raw=raw, vocabulary=item_vocabulary(tft_output), text=text)
