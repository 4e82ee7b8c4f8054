"""`recsys catalog refresh`: new items served without retraining.

Items arrive between trainings. The serving model already knows how to embed
an item it has never seen (its candidate tower reads the item's text, genres
and year), so a new catalogue needs no Trainer run: load the serving (latest
blessed, pushed) version, embed the catalogue file's items with that
model's own towers, rebuild the index (brute force and, if the version has
one, its ScaNN twin, whose recall is checked again on the new catalogue)
with the settings it was exported with, and publish the result as the next
version of the same model through AtomicPusher's atomic publish. TF Serving
(or `recsys serve`) swaps to it like to any new version.

Only rows that are new or changed go through the towers: a version keeps each
row's id and item text (everything its vectors came from), and a row whose
id and text are unchanged keeps its vectors. BERT is the refresh's largest
cost after the save, and a catalogue mostly stays as it was between two
refreshes.

Item rows are parsed by ExampleGen's own parsers (layouts.py): a row without
a title or genres is rejected with its reason, never silently dropped.
"""
import dataclasses
import os
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
from absl import logging

from components.atomic_pusher.executor import publish_version
from components.movielens_example_gen import layouts
from trainer import contract
from trainer import export
from trainer import index
from trainer import item_item
from trainer import text

BATCH = 256


@dataclasses.dataclass
class RefreshResult:
  version_dir: str
  items: int
  new_items: int  # not in the base version's catalogue
  embedded: int  # went through the towers: new or changed since the base
  rejected: List[Tuple[str, str]]  # (reason, raw row)
  seconds: float


def read_items(data_dir: str) -> Tuple[List[layouts.Item],
                                       List[Tuple[str, str]]]:
  """The catalogue file of data_dir's layout: (items, [(reason, row)])."""
  return layouts.read_rows(data_dir, layouts.detect_layout(data_dir).items,
                           tf.io.gfile.GFile)


def _columns(items: List[layouts.Item]) -> Dict[str, tf.Tensor]:
  rows = contract.item_inputs([dict(item._asdict()) for item in items])
  return {k: tf.constant(v) for k, v in rows.items()}


def embed(towers, items: List[layouts.Item]) -> Tuple[np.ndarray,
                                                       np.ndarray]:
  """([N, d] candidate vectors, [N, text_dim] frozen text vectors) from
  the model's own towers, in batches: BERT once per item, or twice with a
  model exported before Towers had candidates_and_text."""
  vectors, texts = [], []
  for start in range(0, len(items), BATCH):
    columns = _columns(items[start:start + BATCH])
    if hasattr(towers, "candidates_and_text"):
      candidates, frozen = towers.candidates_and_text(**columns)
    else:
      candidates = towers.candidates(**columns)
      frozen = towers.encode_text(text.item_text(
          columns[contract.TITLE], columns[contract.YEAR],
          columns[contract.GENRES]))
    vectors.append(candidates.numpy())
    texts.append(frozen.numpy())
  return np.concatenate(vectors), np.concatenate(texts)


def unchanged_rows(loaded, items: List[layouts.Item]) -> np.ndarray:
  """[N] the base version's row of each item whose id and item text are
  the same there, else -1 (every row of a version exported before versions
  kept their rows' text)."""
  if not hasattr(loaded, "catalog_texts"):
    return np.full([len(items)], -1)
  columns = _columns(items)
  texts = text.item_text(columns[contract.TITLE], columns[contract.YEAR],
                         columns[contract.GENRES]).numpy()
  old = {key: row for row, key in enumerate(zip(
      loaded.catalog_ids.numpy(), loaded.catalog_texts.numpy()))}
  return np.array([old.get((item.item_id.encode(), item_text), -1)
                   for item, item_text in zip(items, texts)])


def embed_changed(loaded, items: List[layouts.Item],
                  reembed_all: bool = False
                  ) -> Tuple[np.ndarray, np.ndarray, int]:
  """embed()'s two arrays for every item, with the base version's vectors
  for unchanged rows (none with `reembed_all`); and how many items went
  through the towers."""
  rows = (np.full([len(items)], -1) if reembed_all
          else unchanged_rows(loaded, items))
  vectors = loaded.item_vectors.numpy()[rows]
  texts = loaded.item_text_vectors.numpy()[rows]
  changed = np.flatnonzero(rows < 0)
  if len(changed):
    vectors[changed], texts[changed] = embed(
        loaded.towers, [items[i] for i in changed])
  return vectors, texts, len(changed)


def export_items(loaded, items: List[layouts.Item], vectors: np.ndarray,
                 text_vectors: np.ndarray, settings: index.IndexSettings,
                 export_dir: str, scann: bool = False,
                 matrix: Optional[item_item.Matrix] = None):
  """Exports `loaded`'s towers over the catalogue `items` (their vectors
  from embed_changed) with `settings`: the OOV row kept and, when the
  settings have the item-item term on, `matrix` (over `items`' rows) or by
  default `loaded`'s matrix remapped to `items` (known items keep what
  training learned; new ones get none, only the towers place them, or
  borrow from their text neighbours as the settings' item_item_new_items
  says). The catalogue refresh and bench-serving's item-item cost export
  through here."""
  ids = np.array([i.item_id for i in items], object)
  columns = contract.item_inputs([dict(item._asdict()) for item in items])
  oov = loaded.indexed_item_vectors(tf.constant([""])).numpy()
  if not settings.item_item_weight:
    matrix = None
  elif matrix is None:
    matrix = item_item.remap(item_item.served_matrix(loaded),
                             loaded.catalog_ids.numpy(), ids, text_vectors,
                             settings.item_item_neighbours,
                             settings.item_item_new_items)
  return export.export_catalog(
      loaded.towers, ids, np.array([i.title for i in items], object),
      columns[contract.YEAR], columns[contract.GENRES],
      np.concatenate([vectors, oov]), text_vectors, settings, export_dir,
      scann=scann, item_item=matrix)


def refresh(data_dir: str, model_base_path: str,
            max_reject_fraction: float = 0.01,
            reembed_all: bool = False) -> RefreshResult:
  """Re-indexes the catalogue in `data_dir` with the serving model at
  `model_base_path` and publishes it as that model's next version.
  `reembed_all` runs every row through the towers, unchanged or not (the
  worst case's time, or to rebuild a version's vectors from its towers).

  Raises:
    FileNotFoundError: nothing is pushed there yet, or no catalogue file.
    ValueError: too many malformed rows, or the model has no text tower
      (it could not embed unseen items).
  """
  start = time.time()
  base = contract.latest_version_dir(model_base_path)
  items, rejected = read_items(data_dir)
  for reason, row in rejected:
    logging.warning("catalog refresh: rejected item row (%s): %r", reason,
                    row[:200])
  if not items or len(rejected) > max_reject_fraction * (len(items) +
                                                         len(rejected)):
    raise ValueError(
        f"{len(rejected)} of {len(items) + len(rejected)} item rows rejected "
        f"(limit {max_reject_fraction:.1%}); first: {rejected[:3]}")
  twin = contract.scann_twin(model_base_path)
  has_twin = os.path.basename(base) in map(str, contract.versions(twin))
  if has_twin:
    import scann  # noqa: F401  (the twin's ops, for re-export)
  loaded = tf.saved_model.load(base)
  if not hasattr(loaded.towers, "encode_text"):
    raise ValueError(f"{base} has no text tower: it cannot embed new items")
  known = {i.decode() for i in loaded.catalog_ids.numpy()}
  vectors, text_vectors, embedded = embed_changed(loaded, items,
                                                  reembed_all)
  logging.info("catalog refresh: embedded %d new or changed items of %d "
               "with %s; the rest keep their vectors", embedded, len(items),
               base)
  with tempfile.TemporaryDirectory() as staging:
    export_dir = os.path.join(staging, "model")
    export_items(loaded, items, vectors, text_vectors,
                 index.IndexSettings.read(base), export_dir, scann=has_twin)
    version = int(time.time())
    published = publish_version(export_dir, model_base_path, version)
    if has_twin:
      publish_version(contract.scann_twin(export_dir), twin,
                      int(os.path.basename(published)))
  seconds = time.time() - start
  new = sum(1 for i in items if i.item_id not in known)
  logging.info("catalog refresh: %d items (%d new, %d rejected) published as "
               "%s in %.1fs", len(items), new, len(rejected), published,
               seconds)
  return RefreshResult(published, len(items), new, embedded, rejected,
                       seconds)
