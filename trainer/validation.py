"""The evaluation protocol shared by the Tuner and bench-quality.

Each held-out interaction asks for the top k among the items its user has
not rated before it (`recommend_unseen`: nobody re-rates a movie); the old
"seen included" recall@100 is kept as a second column. Hyperparameters are
chosen on a validation window carved from the end of the training period
(`split`: its fit window leaves the newest release wave out, so that
validation has new items like the ones the served model meets), never on
the eval period.
"""
import dataclasses
from typing import Dict, Iterator, List, Tuple

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from trainer import features
from trainer import item_item
from trainer import serving_towers
from trainer import towers

KS = (10, 50, 100)
# The share of training interactions, by time, held out for validation.
VALIDATION_SHARE = 0.1


class Interactions:
  """Interaction examples as ExampleGen wrote them (raw tensors, for models
  that read Transform's outputs) and as arrays over catalogue rows (for the
  peers and the metrics)."""

  def __init__(self, raw: Dict[str, tf.Tensor], row_of: Dict[str, int]):
    self.raw = raw
    column = lambda key: raw[key].numpy().reshape(-1)  # noqa: E731
    self.users = column(features.USER_ID)
    self.items = np.array([row_of.get(i.decode(), -1)
                           for i in column(features.ITEM_ID)])
    self.timestamps = column(features.TIMESTAMP)
    self.ratings = column(features.RATING)
    history = tf.RaggedTensor.from_sparse(raw[features.HISTORY])
    self.histories = [np.array([row_of.get(i.decode(), -1) for i in h],
                               np.int64) for h in history.numpy()]
    self._row_of = row_of

  def __len__(self):
    return len(self.items)

  @property
  def row_of(self) -> Dict[str, int]:
    """Item id -> catalogue row."""
    return self._row_of

  @classmethod
  def read(cls, files, row_of: Dict[str, int]) -> "Interactions":
    parts = [tf.io.parse_example(b, features.raw_feature_spec())
             for b in tf.data.TFRecordDataset(files, "GZIP").batch(8192)]
    raw = {}
    for key in parts[0]:
      if isinstance(parts[0][key], tf.SparseTensor):
        raw[key] = tf.sparse.concat(0, [p[key] for p in parts],
                                    expand_nonconcat_dims=True)
      else:
        raw[key] = tf.concat([p[key] for p in parts], 0)
    return cls(raw, row_of).in_canonical_order()

  def in_canonical_order(self) -> "Interactions":
    """These interactions sorted by (time, user, item id, rating).
    ExampleGen's files do not keep one order from run to run, and a seeded
    shuffle of a different order is a different run: sorted, the same
    examples train the same model wherever and whenever they were written.
    Ties go by the item's id, not its catalogue row, so the catalogue's
    order cannot reach the training order either."""
    codes = lambda v: np.unique(v, return_inverse=True)[1]  # noqa: E731
    item_ids = self.raw[features.ITEM_ID].numpy().reshape(-1)
    order = np.lexsort((self.ratings, codes(item_ids), codes(self.users),
                        self.timestamps))
    return self._gathered(order)

  def subset(self, mask: np.ndarray) -> "Interactions":
    return self._gathered(np.flatnonzero(mask))

  def _gathered(self, rows: np.ndarray) -> "Interactions":
    return Interactions(features.gather_rows(self.raw, rows), self._row_of)

  def on_items(self, rows: np.ndarray) -> np.ndarray:
    """[len(self)] whether each interaction's item is one of the catalogue
    `rows` ([num_items] bool; an unknown item is in none)."""
    return (self.items >= 0) & rows[np.maximum(self.items, 0)]

  def with_items_new(self, rows: np.ndarray, drop: bool) -> "Interactions":
    """These interactions as if the catalogue `rows` ([num_items] bool) had
    been released after them: their ids are unknown in every history (as a
    brand-new item's id is to the served model) and, with `drop`, the
    interactions with them are gone."""
    hidden = {item.encode() for item, row in self._row_of.items()
              if rows[row]}
    history = self.raw[features.HISTORY]
    values = np.array([hidden_id(v) if v in hidden else v
                       for v in history.values.numpy()], object)
    raw = {**self.raw, features.HISTORY: tf.SparseTensor(
        history.indices, tf.constant(values), history.dense_shape)}
    out = Interactions(raw, self._row_of)
    if drop:
      out = out.subset(~self.on_items(rows))
    return out

  def raw_batches(self, size: int = 4096) -> Iterator[Dict[str, tf.Tensor]]:
    for start in range(0, len(self), size):
      yield {k: (tf.sparse.slice(v, [start, 0], [size, v.dense_shape[1]])
                 if isinstance(v, tf.SparseTensor) else v[start:start + size])
             for k, v in self.raw.items()}

  def training_dataset(self, tft_layer, batch_size: int, seed: int = 1):
    """Shuffled, repeating batches of Transform's outputs."""
    return (tf.data.Dataset.from_tensor_slices(self.raw)
            .shuffle(len(self), seed=seed).repeat()
            .batch(batch_size, drop_remainder=True)
            .map(tft_layer).prefetch(2))


# The id new items carry when a setting scores them as brand new: no
# vocabulary holds it, so it maps to the OOV row. Inside histories it is
# followed by the item's own id (hidden_id): the served model would still
# find a new item's text in its catalogue.
UNKNOWN_ID = b"<new since training>"


def hidden_id(item_id: bytes) -> bytes:
  """`item_id` as with_items_new hides it in histories: unknown to every
  vocabulary, its catalogue row still recoverable (text_row)."""
  return UNKNOWN_ID + b":" + item_id


def text_row(item_id: bytes, row_of: Dict[str, int]) -> int:
  """The catalogue row whose text a history id stands for (hidden ids
  included), or -1."""
  if item_id.startswith(UNKNOWN_ID + b":"):
    item_id = item_id[len(UNKNOWN_ID) + 1:]
  return row_of.get(item_id.decode(), -1)


def user_queries(model, tft_layer, queries: Interactions,
                 text_vectors: np.ndarray, history_text: bool):
  """[n, d] query vectors and [n] predicted ratings for `queries`; with
  `history_text`, each history item without an id row read from its
  catalogue text, as the exported model does with
  TrainerConfig.new_item_history_text (the same with_history_text)."""
  query, ratings = [], []
  for batch in queries.raw_batches():
    inputs = tft_layer(batch)
    if history_text:
      history = batch[features.HISTORY]
      rows = np.array([text_row(v, queries.row_of)
                       for v in history.values.numpy()], np.int64)
      inputs = serving_towers.with_history_text(
          inputs, history, tf.constant(text_vectors[np.maximum(rows, 0)]),
          tf.constant(rows >= 0))
    q, _, r = model(model.with_text(inputs))
    query.append(q.numpy())
    ratings.append(r.numpy())
  return np.concatenate(query), np.concatenate(ratings)


def validation_cut(train: Interactions) -> int:
  """First timestamp of the validation window: the last VALIDATION_SHARE of
  the training interactions by time."""
  return int(np.quantile(train.timestamps, 1.0 - VALIDATION_SHARE))


def seen_before(history: Interactions, queries: Interactions,
                num_items: int) -> sp.csr_matrix:
  """[len(queries), num_items]: 1 where the query's user rated the item
  strictly before the query's time, in `history` or earlier in `queries`."""
  users = np.concatenate([history.users, queries.users])
  items = np.concatenate([history.items, queries.items])
  times = np.concatenate([history.timestamps, queries.timestamps])
  keep = items >= 0
  users, items, times = users[keep], items[keep], times[keep]
  order = np.lexsort((times, users))
  users, items, times = users[order], items[order], times[order]
  starts = {}
  boundaries = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
  ends = np.r_[boundaries[1:], len(users)]
  for s, e in zip(boundaries, ends):
    starts[users[s]] = (s, e)
  indptr, indices = [0], []
  for user, t in zip(queries.users, queries.timestamps):
    s, e = starts.get(user, (0, 0))
    n = np.searchsorted(times[s:e], t, side="left")
    indices.append(items[s:s + n])
    indptr.append(indptr[-1] + n)
  indices = np.concatenate(indices) if indices else np.zeros(0, np.int64)
  return sp.csr_matrix((np.ones(len(indices), np.float32), indices,
                        np.array(indptr)), shape=(len(queries), num_items))


def release_wave(fit: Interactions, years: np.ndarray) -> np.ndarray:
  """[num_items] bool: the items of the newest release year among those
  rated in `fit`.

  The eval period's new items are mostly that kind of film (ML-100K: 97 of
  its 126 interactions with items unseen in training are 1998 releases),
  while the few items first rated in a validation window are old, obscure
  ones (15 interactions in ML-100K's). Treating the newest wave as not yet
  released when fitting gives validation a cold-start slice like the one
  the served model meets."""
  rated = np.zeros(len(years), bool)
  rated[fit.items[fit.items >= 0]] = True
  dated = rated & (years != features.UNKNOWN_YEAR)
  if not dated.any():
    return np.zeros(len(years), bool)
  return years == years[dated].max()


@dataclasses.dataclass
class Split:
  """The validation setting: fit on `fit`, score `held_out`."""
  fit: Interactions       # before the cut, the release wave left out
  held_out: Interactions  # from the cut on (wave ids unknown in histories)
  seen: sp.csr_matrix     # [len(held_out), num_items] rated before each
  cut: int                # first timestamp of the validation window
  wave: np.ndarray        # [num_items] bool: release_wave


def split(train: Interactions, years: np.ndarray) -> Split:
  """Carves the validation window from the end of `train` (raw catalogue
  `years` by row) and holds the release wave out of its fit window. A user
  who rated a wave item before the cut still has it excluded from their
  recommendations: they rated it."""
  cut = validation_cut(train)
  before = train.subset(train.timestamps < cut)
  after = train.subset(train.timestamps >= cut)
  wave = release_wave(before, years)
  return Split(fit=before.with_items_new(wave, drop=True),
               held_out=after.with_items_new(wave, drop=False),
               seen=seen_before(before, after, len(years)), cut=cut,
               wave=wave)


def top_k(scores: np.ndarray, exclude: sp.csr_matrix = None,
          k: int = 100) -> np.ndarray:
  """[n, N] scores -> [n, k] catalogue rows, best first, `exclude`d left
  out."""
  scores = np.array(scores, np.float32, copy=True)
  if exclude is not None:
    rows, cols = exclude.nonzero()
    scores[rows, cols] = -np.inf
  k = min(k, scores.shape[1])
  top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
  order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
  return np.take_along_axis(top, order, 1)


@dataclasses.dataclass
class RankingStage:
  """The exported model's ranking stage (export.RecommenderModule), for
  scores computed here: each query's retrieval top `depth` ordered by its
  score + `weight` x the rating head's predicted rating.

  query [n, d] and candidates [N, d] are the vectors the scores came from
  (scores = query @ candidates.T)."""
  model: object
  query: np.ndarray
  candidates: np.ndarray
  weight: float
  depth: int = 100

  @classmethod
  def of(cls, config, model, query, candidates) -> "RankingStage":
    """The stage `config` (a TrainerConfig) serves; None at weight 0."""
    if not config.rerank_weight:
      return None
    return cls(model, query, candidates, config.rerank_weight,
               config.rerank_depth)

  def ratings(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """[m] query rows x [m, r] catalogue rows -> [m, r] predicted
    ratings."""
    out = []
    per_chunk = max(1, 65536 // max(items.shape[1], 1))
    for start in range(0, len(rows), per_chunk):
      part = items[start:start + per_chunk]
      query = np.repeat(self.query[rows[start:start + per_chunk]],
                        part.shape[1], axis=0)
      out.append(self.model.predict_rating(
          tf.constant(query), tf.constant(
              self.candidates[part.reshape(-1)])).numpy().reshape(part.shape))
    return (np.concatenate(out) if out else
            np.zeros(items.shape, np.float32))

  def order(self, top: np.ndarray, scores: np.ndarray, rows: np.ndarray,
            ratings: np.ndarray = None) -> np.ndarray:
    """top [m, >= depth] catalogue rows in retrieval order, scores [m, N]
    their rows' retrieval scores, rows [m] their query rows -> top with its
    first `depth` in the ranking stage's order. `ratings` [m, depth]: the
    head's predicted ratings if already computed (a sweep over weights)."""
    head = top[:, :self.depth]
    if ratings is None:
      ratings = self.ratings(rows, head)
    final = np.take_along_axis(scores, head, 1) + self.weight * ratings
    head = np.take_along_axis(head, np.argsort(-final, 1, kind="stable"), 1)
    return np.concatenate([head, top[:, self.depth:]], axis=1)


def served_top(scores: np.ndarray, exclude: sp.csr_matrix = None,
               ranking: RankingStage = None, rows: np.ndarray = None,
               k: int = 100) -> np.ndarray:
  """top_k, through `ranking` if given (rows [n]: which of its queries
  the scores' rows are; default all): the list the exported model serves."""
  if ranking is None:
    return top_k(scores, exclude, k)
  rows = np.arange(len(scores)) if rows is None else rows
  top = top_k(scores, exclude, max(k, ranking.depth))
  return ranking.order(top, scores, rows)[:, :k]


# Candidate values of TrainerConfig.rerank_weight, chosen by the Tuner for
# each trial's model after training (make bench-rerank's sweep, coarser;
# 0.1 because a trial with the rating loss at full weight chose 0.05, the
# edge, in a 3-trial search on ML-100K).
RERANK_WEIGHTS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1)


def rerank_sweep(stage: RankingStage, scores: np.ndarray,
                 seen: sp.csr_matrix, truth: np.ndarray, weights
                 ) -> List[Dict]:
  """ranking_metrics of the lists `stage` serves at each of `weights` (its
  own weight is ignored), seen items excluded. The predicted ratings of
  each query's retrieval top `stage.depth` are computed once, so the
  weights are compared on the same model and the same ratings."""
  top = top_k(scores, seen, max(stage.depth, 100))
  rows = np.arange(len(scores))
  # Weight 0 alone (a stage kept off) needs no ratings.
  ratings = (stage.ratings(rows, top[:, :stage.depth]) if any(weights)
             else np.zeros(top[:, :stage.depth].shape, np.float32))
  out = []
  for weight in weights:
    served = dataclasses.replace(stage, weight=weight).order(
        top, scores, rows, ratings)[:, :100]
    out.append({"weight": weight,
                **ranking_metrics(served, truth, scores.shape[1])})
  return out


def pick_rerank_weight(sweeps: List[List[Dict]], select_by: str = "recall@10"
                       ) -> Dict:
  """rerank_sweep's rows of several runs of one config (seeds), averaged
  weight by weight; the row with the best `select_by` (ties: the lighter
  weight, so that the stage has to earn its place)."""
  rows = []
  for same in zip(*sweeps):
    if len({row["weight"] for row in same}) != 1:
      raise ValueError("runs swept different weights")
    rows.append(_mean_row(same, ("weight",)))
  return max(sorted(rows, key=lambda row: row["weight"]),
             key=lambda row: row[select_by])


# The item-item term's knobs (TrainerConfig fields), chosen together.
ITEM_ITEM_KNOBS = ("item_item_weight", "item_item_l2", "item_item_decay")
# The Tuner's grid for them, each trial's models scored at every point
# after training (the term changes no training), besides the Trainer's own
# values and weight 0. Around what bench-quality's larger grid (its
# choose_item_item: 4 weights x 7 L2 x 5 decays) chose on ML-100K's
# validation window, mean of three models: weight 3, L2 800, decay 0.85
# (RESULTS "The item-item term's knobs together"). Kept small: each point
# is a scoring of the whole validation window, ~1 s on ML-100K per model.
ITEM_ITEM_WEIGHTS = (2.0, 3.0, 5.0, 8.0)
ITEM_ITEM_L2S = (800.0, 1600.0)
ITEM_ITEM_DECAYS = (0.85, 0.95)


def choose_item_item(cosines: List[np.ndarray],
                     matrices: Dict[float, np.ndarray], queries: Interactions,
                     seen: sp.csr_matrix, weights, decays,
                     off: Tuple[float, float], select_by: str = "recall@10"
                     ) -> Tuple[Dict, List[Dict]]:
  """The item-item term for models whose retrieval scores of `queries` are
  `cosines` (one [n, N] per seed): weight 0 (labelled with `off`, an (L2,
  decay)) or every weight x L2 (`matrices`: L2 -> EASE's matrix fit at it)
  x decay, each scored as cosine + weight x term, compared by the mean over
  the models of `select_by` (seen items excluded). A tie keeps the earlier
  point: weight 0, then by L2, decay and weight, smaller first, so the term
  has to earn its place. (the best row, every row): rows are {knob:
  value for ITEM_ITEM_KNOBS, **mean metrics}."""
  weights, decays = sorted(set(weights)), sorted(set(decays))
  runs = {(0.0, *off): [evaluate(c, queries, seen) for c in cosines]}
  for l2 in sorted(matrices):
    for decay in decays:  # one [n, N] term in memory at a time
      term = item_item.scores(matrices[l2], queries.histories, decay)
      for weight in weights:
        runs[(weight, l2, decay)] = [evaluate(c + weight * term, queries, seen)
                                     for c in cosines]
  rows = [_mean_row(tuple({**dict(zip(ITEM_ITEM_KNOBS, point)), **m}
                          for m in metrics), ITEM_ITEM_KNOBS)
          for point, metrics in runs.items()]
  return max(rows, key=lambda row: row[select_by]), rows  # first on ties


def ranks(top: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """top [n, 100] catalogue rows, truth [n] row of the rated item (-1 none)
  -> [n] the rated item's rank in `top`, from 1; 0 where it is not there."""
  hits = top == truth[:, None]
  return np.where(hits.any(1), hits.argmax(1) + 1, 0)


def per_interaction(rank: np.ndarray) -> Dict[str, np.ndarray]:
  """The protocol's metrics for each interaction, from its rank: each
  metric is the mean of its column (what a user-level bootstrap
  resamples)."""
  found = rank > 0
  out = {f"recall@{k}": (found & (rank <= k)).astype(np.float64) for k in KS}
  gain = 1.0 / np.log2(np.maximum(rank, 1) + 1)
  out["ndcg@10"] = np.where(found & (rank <= 10), gain, 0.0)
  out["mrr"] = np.where(found, 1.0 / np.maximum(rank, 1), 0.0)
  return out


def ranking_metrics(top: np.ndarray, truth: np.ndarray, n_items: int
                    ) -> Dict[str, float]:
  """top [n, 100] catalogue rows, truth [n] row of the rated item (-1 none)."""
  out = {k: float(v.mean())
         for k, v in per_interaction(ranks(top, truth)).items()}
  out["coverage@10"] = float(len(np.unique(top[:, :10])) / n_items)
  out["examples"] = int(len(truth))
  return out


def evaluate(scores: np.ndarray, queries: Interactions,
             seen: sp.csr_matrix, mask: np.ndarray = None,
             ranking: RankingStage = None) -> Dict[str, float]:
  """The protocol's metrics (seen excluded) plus recall@100 seen included;
  with `ranking`, of the lists its stage orders (as served)."""
  m = np.ones(len(queries), bool) if mask is None else mask
  n_items = scores.shape[1]
  rows = np.flatnonzero(m)
  out = ranking_metrics(served_top(scores[m], seen[m], ranking, rows),
                        queries.items[m], n_items)
  included = ranking_metrics(served_top(scores[m], None, ranking, rows),
                             queries.items[m], n_items)
  out["recall@100_seen_included"] = included["recall@100"]
  return out


# Candidate values of TrainerConfig.new_item_text_share and
# new_item_score_scale, chosen together for a model with the text tower.
NEW_ITEM_SHARES = (1.0, 0.75, 0.5, 0.25, 0.0)
NEW_ITEM_SCALES = (1.0, 0.97, 0.95, 0.93, 0.9, 0.85, 0.8)


def new_item_rows(fit: Interactions, num_items: int) -> np.ndarray:
  """[num_items] bool: catalogue rows nobody rated in `fit`.

  A model trained on `fit` meets them as new items. In the validation
  setting they still have id rows (Transform's vocabulary is the whole
  training period's), untrained ones; `ids_unknown` makes the model score
  them as the served model scores new items."""
  return np.bincount(fit.items[fit.items >= 0], minlength=num_items) == 0


def ids_unknown(catalog: Dict[str, tf.Tensor], rows: np.ndarray
                ) -> Dict[str, tf.Tensor]:
  """The raw catalogue with the item ids of `rows` replaced by one no
  vocabulary holds (they map to the OOV row)."""
  ids = catalog[features.ITEM_ID].numpy().copy()
  ids[rows] = UNKNOWN_ID
  return {**catalog, features.ITEM_ID: tf.constant(ids)}


def new_item_placements(model, tft_layer, catalog: Dict[str, tf.Tensor],
                        new_rows: np.ndarray, text_vectors: np.ndarray
                        ) -> Dict[float, np.ndarray]:
  """{share: [N, d]} candidate vectors at new-item scale 1, `new_rows`
  scored as new items, for the two placements a share mixes: 1.0 (text
  alone) and, where the model can mix (text only for new items), 0.0 (the
  unknown-id row). `choose_new_item_serving` mixes them as the tower does.
  """
  from trainer import task  # the Trainer's module: heavy, needed here only
  tower = model.candidate_tower
  kept = tower.new_item_scale, tower.new_item_text_share
  shares = (1.0, 0.0) if model.items.text_for_new_items_only else (1.0,)
  catalog = ids_unknown(catalog, new_rows)
  out = {}
  try:
    tower.new_item_scale = 1.0
    for share in shares:
      tower.new_item_text_share = share
      out[share] = task.candidate_vectors(model, tft_layer, catalog,
                                          text_vectors)[:-1]
  finally:
    tower.new_item_scale, tower.new_item_text_share = kept
  return out


def new_item_candidates(placements: Dict[float, np.ndarray],
                        new_rows: np.ndarray, share: float, scale: float
                        ) -> np.ndarray:
  """[N, d] candidate vectors with `new_rows` placed as the tower serves a
  new item at text share `share` and scale `scale`, from
  `new_item_placements` (the other rows are the same in every placement)."""
  return np.where(new_rows[:, None], _placement(placements, share) * scale,
                  placements[1.0])


def _placement(placements: Dict[float, np.ndarray], share: float
               ) -> np.ndarray:
  """The placement at text share `share`: given, or mixed from text alone
  (1.0) and the unknown-id row (0.0)."""
  mixed = placements.get(share)
  if mixed is None:
    mixed = towers.mix_new_item_placements(placements[1.0],
                                           placements[0.0], share).numpy()
  return mixed


def choose_new_item_serving(queries: np.ndarray,
                            placements: Dict[float, np.ndarray],
                            new_rows: np.ndarray, held_out: Interactions,
                            seen: sp.csr_matrix, select_by: str = "recall@10",
                            extra_scores=0.0) -> Tuple[Dict, List[Dict]]:
  """TrainerConfig.new_item_text_share and new_item_score_scale for a model
  trained on the fit window, from its query vectors [n, d] and
  `new_item_placements`.

  The floor is the new items' recall@100 that the unknown-id row at full
  length gives them (share 0, scale 1: exactly how the no-text model
  serves every new item). Text is in the model to serve new items, so the
  pairs with text in the mix (share > 0) that keep the floor come first:
  the one with the best validation `select_by` among them. Only when every
  such pair loses ground on new items does the unknown-id row serve them
  alone (the best share-0 pair that keeps the floor). On equal footing, a
  one-interaction difference in recall@10 could switch text off for new
  items (bench-quality, canonical example order: share 0 0.1939 against
  share 0.25's 0.1938, whose new items' recall@100 was 0.606 against
  0.596). (Judged over all interactions alone, recall@10 would simply
  shorten new items: they rarely make a top 10.) Without a share-0
  placement, the floor is text alone at scale 1. Returns the chosen pair's
  row (its "share", "scale" and validation metrics) and the rows of every
  pair."""
  new = held_out.on_items(new_rows)
  shares = NEW_ITEM_SHARES if 0.0 in placements else (1.0,)
  # Each share mixed once, not once per scale.
  placements = {share: _placement(placements, share) for share in
                {*placements, *shares}}
  table = []
  for share in shares:
    for scale in NEW_ITEM_SCALES:
      candidates = new_item_candidates(placements, new_rows, share, scale)
      scores = queries @ candidates.T + extra_scores
      new_recall = (evaluate(scores, held_out, seen, new)["recall@100"]
                    if new.any() else 0.0)
      table.append({"share": share, "scale": scale,
                    "new_item_interactions": int(new.sum()),
                    "new_item_recall@100": new_recall,
                    **evaluate(scores, held_out, seen)})
  return pick_new_item_serving(table, select_by), table


def serving_options(model, tft_layer, held_out: Interactions,
                    seen: sp.csr_matrix, text_vectors: np.ndarray,
                    placements: Dict[float, np.ndarray], new_rows: np.ndarray,
                    select_by: str = "recall@10",
                    try_history_text: bool = False, extra_scores=0.0
                    ) -> List[Tuple[bool, List[Dict]]]:
  """Each way a model trained on the fit window could serve what it never
  saw: new items inside histories as the unknown id (False) and, with
  `try_history_text` (the config can read them,
  TrainerConfig.can_read_history_text), from their text (True); each with
  choose_new_item_serving's table of new-item shares and scales.
  `extra_scores` [n, N] are added to every option's (the item-item term)."""
  options = []
  for history_text in (False, True) if try_history_text else (False,):
    queries, _ = user_queries(model, tft_layer, held_out, text_vectors,
                              history_text)
    _, table = choose_new_item_serving(queries, placements, new_rows,
                                       held_out, seen, select_by,
                                       extra_scores)
    options.append((history_text, table))
  return options


def mean_options(runs: List[List[Tuple[bool, List[Dict]]]]
                 ) -> List[Tuple[bool, List[Dict]]]:
  """serving_options of several runs of one config (seeds), each table's
  metrics averaged row by row: one seed on the validation window moves
  recall@10 by about 0.004, as much as most choices between configs."""
  out = []
  for options in zip(*runs):
    history_text = options[0][0]
    if any(option[0] != history_text for option in options):
      raise ValueError("runs tried different history text options")
    out.append((history_text, [
        _mean_row(same, ("share", "scale"))
        for same in zip(*(table for _, table in options))]))
  return out


def _mean_row(same: Tuple[Dict, ...], kept: Tuple[str, ...]) -> Dict:
  """One row from the same row of several runs' tables: the `kept` keys
  (what the row is a choice of) from the first, every other the mean."""
  return {k: (same[0][k] if k in kept
              else float(np.mean([row[k] for row in same])))
          for k in same[0]}


def pick_serving(options: List[Tuple[bool, List[Dict]]],
                 select_by: str = "recall@10"
                 ) -> Tuple[Dict, List[Tuple[Dict, List[Dict]]]]:
  """The rule over serving_options (or their mean_options): each option's
  share and scale by pick_new_item_serving; history text only where it
  wins on `select_by` (a tie keeps the plainer model). Returns the chosen
  row, with "history_text", and each option's (chosen row, table)."""
  best, tried = None, []
  for history_text, table in options:
    chosen = dict(pick_new_item_serving(table, select_by),
                  history_text=history_text)
    tried.append((chosen, table))
    if best is None or chosen[select_by] > best[select_by]:
      best = chosen
  return best, tried


def over_seeds(runs: List, select_by: str = "recall@10"
               ) -> Tuple[Dict, List[Tuple[Dict, List[Dict]]]]:
  """A config's validation runs (one per seed), judged as what it would
  serve: for a model with text, runs of serving_options -> pick_serving
  over their mean_options; otherwise runs of `evaluate`'s metrics -> their
  means, with no serving options tried."""
  if isinstance(runs[0], dict):
    return {k: float(np.mean([run[k] for run in runs])) for k in runs[0]}, []
  return pick_serving(mean_options(runs), select_by)


def pick_new_item_serving(table: List[Dict], select_by: str) -> Dict:
  """choose_new_item_serving's rule over its rows ("share", "scale",
  "new_item_recall@100", `select_by`), ordered by share, then scale, both
  descending."""
  lowest = min(row["share"] for row in table)
  floor = next(row["new_item_recall@100"] for row in table
               if row["share"] == lowest and row["scale"] == 1.0)
  kept = [row for row in table if row["new_item_recall@100"] >= floor]
  with_text = [row for row in kept if row["share"] > 0]
  # ties: the first (the most text)
  return max(with_text or kept, key=lambda row: row[select_by])
