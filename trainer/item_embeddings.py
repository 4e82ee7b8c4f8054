"""Frozen BERT vectors of every catalogue item: computed once, read by many.

The ItemTextEmbedder component (components/item_text_embedder) runs this
once per catalogue and writes an ItemEmbeddings artifact; the Trainer reads
it instead of running BERT itself, so re-training with other hyperparameters
never re-encodes the catalogue, and the next catalogue re-encodes only the
texts that changed (`reusable_vectors`). Without the artifact
(benchmarks, notebooks) the Trainer calls `encode_catalog` directly: one code
path either way.

Kinds of text per item (rows in catalogue order):
  item_text  the text builder's full item text: what the candidate tower reads
  title      the bare title: what people type into search
  genres     the genre list: topic queries ("animated children's film")
"""
import io
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from trainer import features
from trainer import text
from trainer.text_tower import TextEncoder
from trainer.text_tower import encode_texts

KINDS = ("item_text", "title", "genres")
VECTORS_FILE = "vectors.npz"
METADATA_FILE = "metadata.json"
# The texts each kind's vectors were encoded from, stored beside them so the
# next catalogue's run re-encodes only the texts that changed.
_TEXTS = "texts:"
# Settings that must match for an earlier artifact's vectors to be reused.
ENCODER_SETTINGS = ("text_encoder_dir", "max_length", "dim")
# Reused texts re-encoded to catch new weights behind the same settings.
SPOT_CHECKS = 8


def read_catalog(pattern: str) -> Dict[str, np.ndarray]:
  """The `items` split: one raw example per catalogue item."""
  files = tf.io.gfile.glob(pattern)
  if not files:
    raise FileNotFoundError(f"No catalogue examples match {pattern!r}")
  spec = {k: v for k, v in features.raw_feature_spec().items()
          if k in features.ITEM_FEATURES}
  rows = {k: [] for k in spec}
  for batch in tf.data.TFRecordDataset(files, "GZIP").batch(4096).map(
      lambda x: tf.io.parse_example(x, spec)):
    for k in spec:
      rows[k].append(batch[k])
  out = {}
  for k, parts in rows.items():
    if isinstance(parts[0], tf.SparseTensor):
      out[k] = tf.sparse.concat(0, parts, expand_nonconcat_dims=True)
    else:
      out[k] = tf.concat(parts, 0)
  return _by_item_id(out)


def _by_item_id(catalog: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """The catalogue's rows sorted by item id. Everything indexed by
  catalogue row (text vectors, the peers' matrices, top-k ties, the
  benchmarks' sort) then depends on what the catalogue holds, not on how
  ExampleGen happened to lay its files out."""
  order = np.argsort(catalog[features.ITEM_ID].numpy().reshape(-1),
                     kind="stable")
  if (order == np.arange(len(order))).all():
    return catalog
  return features.gather_rows(catalog, order)


def dense_genres(catalog: Dict[str, tf.Tensor]) -> tf.Tensor:
  genres = catalog[features.GENRES]
  if isinstance(genres, tf.SparseTensor):
    genres = tf.sparse.to_dense(genres, default_value="")
  return genres


def catalog_texts(catalog: Dict[str, tf.Tensor], kind: str) -> List[bytes]:
  """The strings of one kind for every catalogue item."""
  if kind == "item_text":
    strings = text.item_text(tf.reshape(catalog[features.TITLE], [-1]),
                             tf.reshape(catalog[features.YEAR], [-1]),
                             dense_genres(catalog))
  elif kind == "title":
    strings = tf.reshape(catalog[features.TITLE], [-1])
  elif kind == "genres":
    strings = text.genre_text(dense_genres(catalog))
  else:
    raise ValueError(f"Unknown item text kind {kind!r}; use one of {KINDS}")
  return strings.numpy().tolist()


def parse_kinds(spec: str) -> List[str]:
  """"item_text,title" -> ["item_text", "title"], checked."""
  kinds = [k.strip() for k in spec.split(",") if k.strip()]
  unknown = sorted(set(kinds) - set(KINDS))
  if unknown:
    raise ValueError(f"Unknown item text kinds {unknown}; use {KINDS}")
  return kinds


def needed_kinds(search_queries: str) -> List[str]:
  """What the Trainer reads: the item text, plus each search query kind."""
  return ["item_text"] + [k for k in parse_kinds(search_queries)
                          if k != "item_text"]


def encode_catalog(encoder: TextEncoder, catalog: Dict[str, tf.Tensor],
                   kinds: Sequence[str] = KINDS,
                   known: Optional[Dict[str, Dict[bytes, np.ndarray]]] = None,
                   texts_by_kind: Optional[Dict[str, List[bytes]]] = None
                   ) -> Dict[str, np.ndarray]:
  """{kind: [N, dim] vectors in catalogue order}. Texts in `known`
  ({kind: {text: vector}}, from `reusable_vectors`) are not re-encoded;
  `texts_by_kind` are catalog_texts already computed by the caller."""
  out = {}
  for kind in kinds:
    texts = (texts_by_kind[kind] if texts_by_kind
             else catalog_texts(catalog, kind))
    have = (known or {}).get(kind, {})
    fresh = sorted({t for t in texts if t not in have})
    encoded = dict(zip(fresh, encode_texts(encoder, fresh,
                                           label=f"item {kind} texts")))
    vectors = np.zeros([len(texts), encoder.dim], np.float32)
    for row, t in enumerate(texts):
      vectors[row] = have[t] if t in have else encoded[t]
    out[kind] = vectors
  return out


def reusable_vectors(uri: Optional[str], encoder: TextEncoder,
                     settings: Dict) -> Dict[str, Dict[bytes, np.ndarray]]:
  """{kind: {text: vector}} from an earlier artifact at `uri`, or {} when
  there is none, it predates stored texts, or its encoder differs: other
  `settings` (ENCODER_SETTINGS), or vectors that a fresh encoding of a few
  of its texts does not reproduce (new weights in the same folder)."""
  if not uri:
    return {}
  metadata = read_metadata(uri)
  differ = [k for k in ENCODER_SETTINGS if metadata.get(k) != settings.get(k)]
  if differ:
    logging.info("item embeddings: %s encoded with other %s; encoding all",
                 uri, differ)
    return {}
  _, vectors, texts = _read_all(uri)
  known = {kind: dict(zip(texts[kind], vectors[kind]))
           for kind in texts if kind in vectors}
  every = {t: v for by_text in known.values() for t, v in by_text.items()}
  sample = sorted(every)[:SPOT_CHECKS]
  if sample and not np.allclose(
      encode_texts(encoder, sample, label="spot checks"),
      [every[t] for t in sample], atol=1e-4):
    logging.warning("item embeddings: %s no longer matches the encoder in "
                    "%s; encoding all", uri, settings.get("text_encoder_dir"))
    return {}
  return known


def catalog_ids(catalog: Dict[str, tf.Tensor]) -> List[str]:
  return [i.decode() for i in catalog[features.ITEM_ID].numpy().reshape(-1)]


def write(uri: str, item_ids: Sequence[str], vectors: Dict[str, np.ndarray],
          metadata: Dict,
          texts: Optional[Dict[str, Sequence[bytes]]] = None) -> None:
  """Writes the artifact; `texts` ({kind: texts in row order}) lets a later
  run reuse these vectors for unchanged texts."""
  stored_texts = {_TEXTS + kind: np.array([t.decode() for t in kind_texts],
                                          dtype=str)
                  for kind, kind_texts in (texts or {}).items()}
  buffer = io.BytesIO()
  np.savez(buffer, item_ids=np.array(item_ids, dtype=str), **vectors,
           **stored_texts)
  tf.io.gfile.makedirs(uri)
  with tf.io.gfile.GFile(os.path.join(uri, VECTORS_FILE), "wb") as f:
    f.write(buffer.getvalue())
  with tf.io.gfile.GFile(os.path.join(uri, METADATA_FILE), "w") as f:
    f.write(json.dumps(dict(metadata, kinds=sorted(vectors),
                            items=len(item_ids)), indent=1))


def read(uri: str) -> Tuple[List[str], Dict[str, np.ndarray]]:
  """(item ids, {kind: [N, dim] vectors}) in the artifact's row order."""
  return _read_all(uri)[:2]


def read_metadata(uri: str) -> Dict:
  """The encoder settings, and what the run that wrote `uri` encoded and
  reused (`encoded_texts`, `reused_texts`, `seconds`)."""
  with tf.io.gfile.GFile(os.path.join(uri, METADATA_FILE)) as f:
    return json.load(f)


def _read_all(uri: str) -> Tuple[List[str], Dict[str, np.ndarray],
                                  Dict[str, List[bytes]]]:
  """read()'s ids and vectors, and {kind: texts in row order} ({} for
  artifacts written without them), from one read of the file."""
  with tf.io.gfile.GFile(os.path.join(uri, VECTORS_FILE), "rb") as f:
    data = np.load(io.BytesIO(f.read()))
    ids = data["item_ids"].tolist()
    vectors = {k: data[k].astype(np.float32) for k in data.files
               if k != "item_ids" and not k.startswith(_TEXTS)}
    texts = {k[len(_TEXTS):]: [t.encode() for t in data[k].tolist()]
             for k in data.files if k.startswith(_TEXTS)}
    return ids, vectors, texts


def load_or_encode(uri: str, encoder: TextEncoder,
                   catalog: Dict[str, tf.Tensor], kinds: Sequence[str]
                   ) -> Dict[str, np.ndarray]:
  """The artifact's vectors when `uri` is given (checked against this
  catalogue), else encoded here."""
  if not uri:
    return encode_catalog(encoder, catalog, kinds)
  ids, vectors = read(uri)
  wanted = catalog_ids(catalog)
  if sorted(ids) != sorted(wanted):
    raise ValueError(
        f"Item embeddings at {uri} were made from another catalogue "
        f"({len(ids)} items) than the Trainer's ({len(wanted)})")
  missing = sorted(set(kinds) - set(vectors))
  if missing:
    raise ValueError(f"Item embeddings at {uri} lack kinds {missing}; set "
                     "ItemTextEmbedder's kinds to include them")
  # An artifact written before the catalogue was sorted by id holds the
  # same items in another order: its rows follow the ids, not positions.
  row = {item: i for i, item in enumerate(ids)}
  order = [row[item] for item in wanted]
  return {k: vectors[k][order] for k in kinds}
