"""Warm start: a new model begins from the serving model's weights.

Every period brings new users and items, so Transform's vocabularies change
and a checkpoint cannot simply be restored: row i of an embedding table is a
different id in each run. Tables keyed by a vocabulary are therefore re-keyed
by id string (rows of ids the base model knew are copied, rows of new ids keep
their fresh initialisation, the OOV row carries over); every other variable
(tower layers, text projection, rating head) is copied when its shape is
unchanged. The base model is the exported SavedModel of the latest blessed
run: its variables are a checkpoint whose object graph names each variable by
attribute path (`model/query_tower/user_embedding/embeddings`), and its
assets hold the Transform vocabularies it was trained with. New items' rows
start where the carried text map puts them. The copy can then be shrunk
toward the fresh initialisation (`shrink`; TrainerConfig.warm_start_shrink
says why and how much).
"""
import dataclasses
import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2

from trainer import features
from trainer import preprocessing

# Embedding tables whose rows follow a Transform vocabulary (path suffix ->
# vocabulary name). The OOV bucket is the last row of each.
ROW_KEYED = {
    "user_embedding/embeddings": features.USER_VOCAB,
    "id_embedding/embeddings": features.ITEM_VOCAB,
}
# Where the exported SavedModel keeps the Keras model: RecommenderModule
# .towers.model (trainer/export.py).
MODEL_PATH = ("towers", "model")
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Where the Trainer records the design (TrainerConfig.design) it exported.
DESIGN_PATH = os.path.join("assets.extra", "model_design.json")
_VALUE = "VARIABLE_VALUE"
_MAX_DEPTH = 12


@dataclasses.dataclass
class Report:
  """What warm start carried over (logged and written to metrics.json)."""
  base_model: str
  copied: int = 0  # variables copied whole
  fresh: List[str] = dataclasses.field(default_factory=list)
  carried_rows: Dict[str, int] = dataclasses.field(default_factory=dict)
  new_rows: Dict[str, int] = dataclasses.field(default_factory=dict)
  shrink: float = 1.0  # copied weights = shrink * base + (1 - shrink) * fresh


class BaseModelUnreadable(ValueError):
  """The base model has no readable checkpoint or vocabularies."""


def _paths(root_children, max_depth: int = _MAX_DEPTH):
  """(path, leaf) for every acyclic path from a root, depth first.

  root_children: callable(node) -> {name: child}; leaves are returned
  whatever they are, the caller filters.
  """
  stack = [((), None, frozenset())]
  while stack:
    path, node, seen = stack.pop()
    children = root_children(node)
    for name, child in children.items():
      key = id(child) if not isinstance(child, int) else child
      if key in seen or len(path) >= max_depth:
        continue
      yield path + (name,), child
      stack.append((path + (name,), child, seen | {key}))


def model_variables(model: tf.keras.Model) -> Dict[str, tf.Variable]:
  """{attribute path: variable} for every path to each of model's
  variables (a shared layer is reachable by several)."""
  def children(node):
    node = model if node is None else node
    if isinstance(node, tf.Variable):
      return {}
    try:
      return dict(node._trackable_children(save_type="checkpoint"))  # pylint: disable=protected-access
    except (AttributeError, TypeError):
      return {}
  return {"/".join(path): leaf for path, leaf in _paths(children)
          if isinstance(leaf, tf.Variable)}


def checkpoint_keys(reader, prefix: Tuple[str, ...] = MODEL_PATH
                    ) -> Dict[str, str]:
  """{attribute path below `prefix`: checkpoint key} from a checkpoint's
  object graph (what tf.train.Checkpoint and SavedModels write)."""
  graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
      reader.get_tensor(_OBJECT_GRAPH_KEY))
  start = 0
  for name in prefix:
    found = [c.node_id for c in graph.nodes[start].children
             if c.local_name == name]
    if not found:
      raise BaseModelUnreadable(
          f"no {'/'.join(prefix)!r} object in the checkpoint")
    start = found[0]

  def children(node):
    node = start if node is None else node
    return {c.local_name: c.node_id for c in graph.nodes[node].children}
  keys = {}
  for path, node in _paths(children):
    for attribute in graph.nodes[node].attributes:
      if attribute.name == _VALUE:
        keys["/".join(path)] = attribute.checkpoint_key
  return keys


def read_vocabulary(model_dir: str, name: str) -> List[str]:
  """A Transform vocabulary as the SavedModel's assets hold it."""
  path = os.path.join(model_dir, "assets", name)
  if not tf.io.gfile.exists(path):
    raise BaseModelUnreadable(f"no vocabulary {name!r} in {model_dir}/assets")
  with tf.io.gfile.GFile(path) as f:
    return [line.rstrip("\n") for line in f]


def remap_rows(old: np.ndarray, old_ids: List[str], new: np.ndarray,
               new_ids: List[str]) -> Tuple[np.ndarray, List[int]]:
  """`new` with the rows of ids also in `old_ids` (and the OOV rows)
  copied from `old`; returns (table, rows of the ids `old_ids` lacks)."""
  oov = preprocessing.OOV_BUCKETS
  table = new.copy()
  old_row = {item: i for i, item in enumerate(old_ids)}
  uncarried = []
  for i, item in enumerate(new_ids):
    if item in old_row:
      table[i] = old[old_row[item]]
    else:
      uncarried.append(i)
  table[-oov:] = old[-oov:]
  return table, uncarried


def warm_start(model: tf.keras.Model, base_model_dir: str,
               vocabularies: Dict[str, List[str]],
               shrink: float = 1.0) -> Report:
  """Copies the base model's weights into `model` (built, untrained).

  Args:
    model: a RecommenderModel whose variables exist (called once).
    base_model_dir: the base model's SavedModel (Trainer's Format-Serving).
    vocabularies: {vocabulary name: ids} of this run, for ROW_KEYED tables.

  Raises:
    BaseModelUnreadable: no checkpoint, object graph or vocabulary there.
  """
  try:
    reader = tf.train.load_checkpoint(
        os.path.join(base_model_dir, "variables", "variables"))
  except (tf.errors.OpError, ValueError) as e:
    raise BaseModelUnreadable(str(e).split("\n")[0]) from None
  keys = checkpoint_keys(reader)
  shapes = reader.get_variable_to_shape_map()
  report = Report(base_model=base_model_dir, shrink=shrink)
  done = set()
  new_items = []
  for path, variable in sorted(model_variables(model).items()):
    if id(variable) in done:
      continue
    if path not in keys:
      continue
    done.add(id(variable))
    old = reader.get_tensor(keys[path])
    vocabulary = next((v for suffix, v in ROW_KEYED.items()
                       if path.endswith(suffix)), None)
    if vocabulary is not None and vocabulary in vocabularies:
      value, uncarried = remap_rows(
          old, read_vocabulary(base_model_dir, vocabulary),
          variable.numpy(), vocabularies[vocabulary])
      if vocabulary == features.ITEM_VOCAB:
        new_items = uncarried
      report.carried_rows[vocabulary] = (len(vocabularies[vocabulary]) -
                                         len(uncarried))
      report.new_rows[vocabulary] = len(uncarried)
    elif list(shapes[keys[path]]) == variable.shape.as_list():
      value = old
    else:
      continue
    if shrink != 1.0:  # shrink and perturb (Ash & Adams 2020)
      value = shrink * value + (1.0 - shrink) * variable.numpy()
    variable.assign(value)
    report.copied += 1
  # After the text map has been copied: new items start where it puts them.
  items = getattr(model, "items", None)
  if new_items and hasattr(items, "start_rows_from_text"):
    items.start_rows_from_text(new_items)
  unique = {id(v): p for p, v in sorted(model_variables(model).items(),
                                        reverse=True)}
  report.fresh = sorted(p for i, p in unique.items() if i not in done)
  return report


def write_design(export_dir: str, design: Dict) -> None:
  path = os.path.join(export_dir, DESIGN_PATH)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(design, indent=1, sort_keys=True))


def design_change(base_model_dir: str, design: Dict) -> Optional[str]:
  """What differs between the base model's recorded design and `design`,
  in words, or None when they agree."""
  path = os.path.join(base_model_dir, DESIGN_PATH)
  if not tf.io.gfile.exists(path):
    return "it records no design (exported before designs were recorded)"
  with tf.io.gfile.GFile(path) as f:
    base = json.loads(f.read())
  changed = [f"{k}: {base.get(k)!r} -> {v!r}" for k, v in sorted(
      design.items()) if base.get(k) != v]
  return "; ".join(changed) if changed else None


def maybe_warm_start(model: tf.keras.Model, base_model_dir: Optional[str],
                     vocabularies: Dict[str, List[str]],
                     design: Optional[Dict] = None,
                     shrink: float = 1.0) -> Optional[Report]:
  """warm_start, or None (train from scratch) when there is no base model,
  it cannot be read, or (given `design`) it was trained with another design:
  same-shaped weights of another design mean other things (an additive text
  projection is no text map), and a run warm-started from them starts worse
  than from scratch. A broken or foreign base never stops a run."""
  if not base_model_dir:
    logging.info("warm start: no blessed model yet; training from scratch")
    return None
  change = design_change(base_model_dir, design) if design else None
  if change:
    logging.warning("warm start: base model %s has another design (%s); "
                    "training from scratch", base_model_dir, change)
    return None
  try:
    report = warm_start(model, base_model_dir, vocabularies, shrink)
  except (BaseModelUnreadable, tf.errors.OpError, KeyError, ValueError) as e:
    logging.warning("warm start: cannot read base model %s (%s); training "
                    "from scratch", base_model_dir, e)
    return None
  if not report.copied:
    logging.warning("warm start: nothing in %s matches this model; training "
                    "from scratch", base_model_dir)
    return None
  logging.info("warm start from %s: %d variables copied, rows carried %s, "
               "new %s, fresh variables %s", base_model_dir, report.copied,
               report.carried_rows, report.new_rows, report.fresh)
  return report
