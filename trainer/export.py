"""The exported SavedModel: raw request fields in, item ids, titles, scores out.

The module carries the Transform graph, both towers, the rating head and a
top-k index over the whole catalogue, so TF Serving needs nothing else: no
feature code on the client, no train/serve skew.

Signatures (all tensors batched on axis 0 unless noted):
  recommend(user_id, age, gender, occupation, history_item_ids [B, H] ("" pads),
            k [] int32, rules) -> item_ids [B, k], titles [B, k], scores
            [B, k], and why: because_item_ids, because_titles, reason [B, k]
  recommend_unseen(same inputs) -> the same, excluding history_item_ids
  (all four recommend signatures: retrieval's top rerank_depth eligible
  items, ordered by retrieval score + rerank_weight x predicted rating)
  recommend_fast, recommend_unseen_fast(same inputs) -> item_ids, titles,
            scores as the two above, without the why outputs (cheaper)
  similar_items(item_ids [B], title, year, genres (for new items), k, rules)
      -> item_ids, titles, scores [B, k]: nearest items, the item excluded
  rank(same user fields, item_ids [B, N]) -> scores [B, N] (predicted rating)
  evaluate(examples [B] serialized tf.Example) -> rating [B], hit_at_100 [B]
With the text tower (the default) also:
  search(query [B] str, k [] int32) -> item_ids, titles, scores [B, k]
  personalized_search(query [B] str, the recommend user fields, k [] int32)
      -> the same, re-ordered by the user's taste (see personalized_search)
  embed_items(item_id [B], title [B], year [B] int64, genres [B, G] ("" pads))
      -> vectors [B, d]: candidate vectors for new (cold-start) items
`rules` are contract.RULE_INPUTS: exclude_item_ids [B, E], allowed_genres
[B, G], min_year [B], max_year [B]; empty values mean no rule.
"""
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import contract
from trainer import explanation
from trainer import features
from trainer import item_item as item_item_lib
from trainer import text
from trainer.catalog_rules import CatalogRules
from trainer.index import SCANN_SAVE_OPTIONS
from trainer.index import IndexSettings
from trainer.index import checked_scann
from trainer.index import make_index
from trainer.serving_towers import Towers


def _moments(values: tf.Tensor, valid: tf.Tensor):
  """Mean and standard deviation per row over the `valid` entries, [B, 1]."""
  weight = tf.cast(valid, values.dtype)
  count = tf.maximum(tf.reduce_sum(weight, -1, keepdims=True), 1.0)
  mean = tf.reduce_sum(values * weight, -1, keepdims=True) / count
  var = tf.reduce_sum(tf.square(values - mean) * weight, -1,
                      keepdims=True) / count
  return mean, tf.sqrt(var)


class RecommenderModule(tf.Module):
  """What the Trainer exports; see the module docstring for the signatures.

  Every top-k signature takes the business rules (contract.RULE_INPUTS) and
  returns at most k items that obey them: the index over-fetches
  (index_depth), and when its candidates hold fewer than min(k, eligible)
  eligible items for some row, that batch is scored over the whole catalogue
  instead (exact), so a narrow filter still fills k whenever k items
  qualify. recommend, recommend_unseen and personalized_search also say why
  (see _explain).

  Args:
    towers: the trained Towers, or a loaded model's (catalogue refresh).
    item_ids: [N] catalogue ids; titles: [N] their titles.
    item_vectors: [N + 1, d] candidate vectors; the last row is the vector of
      an unknown item (the out-of-vocabulary path), used by `rank`.
    max_k: largest k served.
    index: a tfrs TopK layer (BruteForce or ScaNN) already indexed over the
      catalogue (see make_index); the two are interchangeable here.
    item_years: [N] release years (0 unknown); item_genres: [N, G] genres
      ("" pads): what the year and genre filters read.
    explain_window: how many of the newest history items can explain a
      recommendation: the history length the model reads.
    explanation_min_share: how much of the strongest history item's effect
      on a recommended item another must have to explain it instead (1: the
      strongest always; explanation.py).
    item_text_vectors: [N, text_dim] frozen BERT vectors of the catalogue
      (with the text tower), for search's direct text match.
    text_match_weight: weight of that match in search scores.
    personalization_weight: weight of the user's taste in
      personalized_search.
    rerank_weight, rerank_depth: the ranking stage of recommend* and
      evaluate. The index's (retrieval's) top `rerank_depth` eligible items
      are ordered by their retrieval score + rerank_weight x the rating
      head's predicted rating; 0 keeps retrieval's order. The rating head
      knows how much a user will like a film they watch, which retrieval
      alone (what they watch next) does not weigh.
    item_item: [N, N] EASE's item-item matrix over catalogue rows
      (trainer/item_item.py), or its PrunedRows (item_item.Pruning), or
      None; with item_item_weight > 0, the
      recommend signatures and evaluate score the index's candidates as
      cosine + item_item_weight x sum over the history of
      item_item_decay ** (items newer) x item_item[history item, candidate],
      before the ranking stage.
  """

  def __init__(self, towers: Towers, item_ids: np.ndarray,
               titles: np.ndarray, item_vectors: np.ndarray, max_k: int,
               index: tfrs.layers.factorized_top_k.TopK,
               item_years: np.ndarray, item_genres: np.ndarray,
               explain_window: int,
               item_text_vectors: Optional[np.ndarray] = None,
               text_match_weight: float = 0.0,
               personalization_weight: float = 0.0,
               explanation_min_share: float = 1.0,
               rerank_weight: float = 0.0, rerank_depth: int = 100,
               item_item: Optional[item_item_lib.Matrix] = None,
               item_item_weight: float = 0.0, item_item_decay: float = 1.0):
    super().__init__()
    self.item_item_weight = (float(item_item_weight) if item_item is not None
                             else 0.0)
    self.item_item_decay = float(item_item_decay)
    if self.item_item_weight:
      self.item_item = item_item_lib.ServedMatrix(item_item)
    self.explanation_min_share = float(explanation_min_share)
    self.rerank_weight = float(rerank_weight)
    self.rerank_depth = max(int(rerank_depth), 1)
    self.towers = towers
    self.has_text = item_text_vectors is not None
    self.personalization_weight = personalization_weight
    self.text_match_weight = text_match_weight
    self.explain_window = max(int(explain_window), 1)
    if self.has_text:
      # Frozen BERT vector of each catalogue row; a zero row for unknowns.
      self.item_text_vectors = tf.Variable(np.concatenate(
          [item_text_vectors, np.zeros_like(item_text_vectors[:1])]),
                                           trainable=False)
    else:
      # tf.saved_model.save traces every tf.function with an input
      # signature it finds on the module, listed or not; without the text
      # tower these cannot be traced (`--use-text false` failed to export).
      self.search = self.personalized_search = self.embed_items = None
    self.max_k = max_k
    first = item_ids[0]
    self.first_item_id = first.decode() if isinstance(first, bytes) else first
    ids = tf.constant(item_ids)
    # What was indexed, readable after loading (catalogue refresh reports
    # which items are new).
    self.catalog_ids = tf.Variable(ids, trainable=False)
    # Each row's item text ("Title (year). Genres"): everything its vectors
    # were computed from besides its id, so a refresh re-embeds only the
    # rows whose id or text changed.
    self.catalog_texts = tf.Variable(text.item_text(
        tf.constant(titles), tf.constant(np.asarray(item_years, np.int64)),
        tf.constant(item_genres)), trainable=False)
    self.index = index
    self.item_vectors = tf.Variable(item_vectors, trainable=False)
    self.titles = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(ids, tf.constant(titles)), "")
    self.rows = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            ids, tf.range(len(item_ids), dtype=tf.int64)), len(item_ids))
    self.rules = CatalogRules(self.rows, item_years, item_genres)

  @property
  def reads_history_text(self) -> bool:
    """Whether new items inside histories are read from this catalogue's
    text (towers exported with history_text; the text tower on)."""
    return self.has_text and hasattr(self.towers, "query_with_history_text")

  def _history_text(self, item_ids):
    """[n] history ids -> their catalogue rows' frozen text [n, text_dim],
    and whether the catalogue has the item [n]."""
    rows = self.rows.lookup(item_ids)
    return (tf.gather(self.item_text_vectors, rows),
            rows < tf.shape(self.catalog_ids, out_type=tf.int64)[0])

  def _query(self, user_id, age, gender, occupation, history_item_ids):
    if self.reads_history_text:
      return self.towers.query_with_history_text(
          user_id, age, gender, occupation, history_item_ids,
          *self._history_text(tf.boolean_mask(history_item_ids,
                                               history_item_ids != "")))
    return self.towers.query(user_id, age, gender, occupation,
                             history_item_ids)

  # Business rules: which rows CatalogRules.eligible; how many, _pick.

  def _pick(self, k, candidate_ids, score, eligible, candidate_ok=None,
            rerank=None):
    """The best min(k, eligible) items per row, [B, k'] (k' the most any
    row can fill; shorter rows end with "" ids and 0 scores).

    candidate_ids [B, M] come from the index; `score(ids, ok)` scores any
    [B, m] ids exactly. If the candidates hold too few eligible items for
    some row, the whole catalogue is scored instead. `rerank(ids)` [B, r]
    -> [B, r], if given, is added to the scores of the best
    max(k, rerank_depth) before the final top k (the ranking stage)."""
    k = tf.clip_by_value(k, 1, self.max_k)
    batch = tf.shape(eligible)[0]
    available = tf.reduce_sum(tf.cast(eligible, tf.int32), 1)
    usable = lambda ids: tf.gather(  # noqa: E731
        eligible, self.rows.lookup(ids), batch_dims=1)
    ok = usable(candidate_ids)
    if candidate_ok is not None:
      ok &= candidate_ok
    enough = tf.reduce_all(tf.reduce_sum(tf.cast(ok, tf.int32), 1) >=
                           tf.minimum(k, available))
    everything = lambda: (  # noqa: E731
        tf.tile(self.catalog_ids[tf.newaxis], [batch, 1]), eligible[:, :-1])
    ids, ok = tf.cond(enough, lambda: (candidate_ids, ok), everything)
    scores = tf.where(ok, score(ids, ok), -1e9)
    if rerank is not None:
      scores, ids = self._reranked(scores, ids, k, rerank)
    top, order = tf.math.top_k(
        scores, k=tf.minimum(k, tf.reduce_max(available)))
    found = top > -1e8
    ids = tf.where(found, tf.gather(ids, order, batch_dims=1), "")
    return {contract.ITEM_IDS: ids, contract.TITLES: self.titles.lookup(ids),
            contract.SCORES: tf.where(found, top, 0.0)}

  def _reranked(self, scores, ids, k, rerank):
    """(scores, ids) [B, r] of the best r = max(k, rerank_depth) by
    `scores`, rerank's term added where an item was found."""
    depth = tf.minimum(tf.maximum(k, self.rerank_depth), tf.shape(ids)[1])
    best, order = tf.math.top_k(scores, k=depth)
    ids = tf.gather(ids, order, batch_dims=1)
    return tf.where(best > -1e8, best + rerank(ids), best), ids

  def _ranking_stage(self, query):
    """rerank(ids) for _pick: rerank_weight x the predicted rating of
    query [B, d] for ids [B, r]; None when the weight is 0."""
    if not self.rerank_weight:
      return None
    return lambda ids: self.rerank_weight * self._ratings(  # noqa: E731
        query[:, tf.newaxis, :], self.indexed_item_vectors(ids))[..., 0]

  def _ratings(self, queries, items):
    """[B, J, d] queries x [B, K, d] items -> [B, K, J] predicted ratings
    of every pair."""
    shape = tf.shape(queries)
    n = tf.shape(items)[1]
    pairs_q = tf.repeat(queries[:, tf.newaxis], n, axis=1)  # [B, K, J, d]
    pairs_c = tf.repeat(items[:, :, tf.newaxis], shape[1], axis=2)
    ratings = self.towers.rating(tf.reshape(pairs_q, [-1, shape[2]]),
                                 tf.reshape(pairs_c, [-1, shape[2]]))
    return tf.reshape(ratings, [shape[0], n, shape[1]])

  def _dot(self, query):
    """score(ids, ok) for _pick: query [B, d] . the ids' indexed vectors."""
    return lambda ids, ok: tf.einsum("bd,bkd->bk", query,
                                     self.indexed_item_vectors(ids))

  def _history_weights(self, history_item_ids):
    """[B, H] the item-item term's weight of each history entry ("" pads,
    oldest first): decay ** (how many entries are newer), 0 on pads."""
    present = tf.not_equal(history_item_ids, "")
    newer = tf.cumsum(tf.cast(present, tf.float32), axis=1, reverse=True,
                      exclusive=True)
    return tf.where(present, tf.pow(self.item_item_decay, newer), 0.0)

  def _item_item_term(self, history_item_ids):
    """[B, N + 1]: item_item_weight x the history's weighted rows of the
    item-item matrix, summed (unknown ids: the zero row N), for whichever
    items are then scored (the index's candidates or, when rules leave
    too few, the whole catalogue)."""
    return self.item_item_weight * self.item_item.term(
        self.rows.lookup(history_item_ids),
        self._history_weights(history_item_ids))

  def _item_item_at(self, history_item_ids, weights, item_ids):
    """[B, k, H]: item_item_weight x each history entry's weight (`weights`
    [B, H]) x the matrix at (that history item, item k of `item_ids`
    [B, k]); unknown ids meet the zero row and column N. Pair by pair, for
    explanations (H is the explanation window, k the items returned)."""
    return (self.item_item_weight * weights[:, tf.newaxis, :] *
            self.item_item.at(self.rows.lookup(history_item_ids),
                              self.rows.lookup(item_ids)))

  def _retrieval_score(self, query, history_item_ids):
    """score(ids, ok) for _pick's recommend lists: the cosine, plus the
    item-item term of the user's history when it is on."""
    dot = self._dot(query)
    if not self.item_item_weight:
      return dot
    term = self._item_item_term(history_item_ids)
    return lambda ids, ok: dot(ids, ok) + tf.gather(  # noqa: E731
        term, self.rows.lookup(ids), batch_dims=1)

  def _recommend(self, user, k, rules, exclude, explain=True):
    query = self._query(*user)
    _, candidates = self.index(query)
    eligible = self.rules.eligible(tf.shape(query)[0], exclude, *rules)
    out = self._pick(k, candidates, self._retrieval_score(query, user[-1]),
                     eligible, rerank=self._ranking_stage(query))
    if explain:
      out.update(self._explain(user, out[contract.ITEM_IDS], ranked=True))
    return out

  def _in_catalog(self, item_ids):
    """Which of `item_ids` the catalogue holds (an unknown id looks up to
    the catalogue's size)."""
    return self.rows.lookup(item_ids) < self.rows.size()

  # Explanations.

  def _explain(self, user, ids, reason=None, ranked=False):
    """because_item_ids/because_titles/reason [B, k] for returned `ids`.

    Read off the model: for each of the newest `explain_window`
    history items the user's query is recomputed without it (one batched
    pass through the query tower, B x (window + 1) rows, the last with the
    whole window), and each returned item is explained by a history item
    whose removal lowers its score most, or by at least
    `explanation_min_share` of that when it explains fewer of the items
    above (explanation.pick_because). An empty history explains with
    `profile`, and so does a history of only ids the catalogue does not
    hold; an item already in the history is `seen`, named itself.
    `ranked`: the items were ordered by the ranking stage, whose predicted
    rating is then part of the score a history item moves."""
    user_id, age, gender, occupation, history = user
    recent = tf.ragged.boolean_mask(history, tf.not_equal(history, ""))
    recent = recent[:, -self.explain_window:]
    width = tf.maximum(tf.cast(tf.reduce_max(recent.row_lengths()),
                               tf.int32), 1)
    recent = recent.to_tensor("", shape=tf.cast(tf.stack(
        [tf.shape(history)[0], width]), tf.int64))
    repeat = lambda x: tf.repeat(x, width + 1, axis=0)  # noqa: E731
    # Row j of each user leaves out history item j; row `width` none.
    leave_out = tf.concat([tf.eye(width, dtype=tf.bool),
                           tf.zeros([1, width], tf.bool)], axis=0)
    without = tf.where(tf.tile(leave_out, [tf.shape(recent)[0], 1]),
                       "", repeat(recent))
    queries = self._query(repeat(user_id), repeat(age), repeat(gender),
                          repeat(occupation), without)
    queries = tf.reshape(queries, [tf.shape(recent)[0], width + 1, -1])
    vectors = self.indexed_item_vectors(ids)
    scores = tf.einsum("bjd,bkd->bkj", queries, vectors)
    if ranked and self.rerank_weight:
      scores += self.rerank_weight * self._ratings(queries, vectors)
    if ranked and self.item_item_weight:
      # Leaving out history item j also takes away its item-item part.
      parts = self._item_item_at(recent, self._history_weights(recent), ids)
      scores -= tf.pad(parts, [[0, 0], [0, 0], [0, 1]])
    # Only films the catalogue holds can be named: an id it does not know
    # (it reaches the model as the unknown id) has no title to show.
    valid = tf.not_equal(recent, "") & self._in_catalog(recent)
    returned = tf.not_equal(ids, "")
    # An item the user has rated (anywhere in the history sent) is named
    # as such: "because you watched X" on X itself, or on another film,
    # explains nothing a viewer needs.
    # (By catalogue row: [B, N], not [B, k, H], for long histories.)
    seen = returned & tf.gather(
        self.rules.listed(history, tf.shape(ids)[0]), self.rows.lookup(ids),
        batch_dims=1)
    best = explanation.pick_because(
        scores[..., -1:] - scores[..., :-1],
        valid[:, tf.newaxis, :] & ~seen[:, :, tf.newaxis],
        self.explanation_min_share)
    because = tf.gather(recent, best, batch_dims=1)
    has_history = tf.reduce_any(valid, axis=-1, keepdims=True)
    because = tf.where(seen, ids,
                       tf.where(has_history & returned, because, ""))
    if reason is None:
      reason = tf.where(has_history, contract.REASON_HISTORY,
                        contract.REASON_PROFILE)
    else:
      reason = tf.fill(tf.shape(ids), reason)
    reason = tf.where(seen, contract.REASON_SEEN, reason)
    return {contract.BECAUSE_ITEM_IDS: because,
            contract.BECAUSE_TITLES: self.titles.lookup(because),
            contract.REASON: tf.where(returned, reason, "")}

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                contract.K_INPUT,
                                *contract.RULE_INPUTS.values()])
  def recommend(self, user_id, age, gender, occupation, history_item_ids, k,
                exclude_item_ids, allowed_genres, min_year, max_year):
    return self._recommend(
        (user_id, age, gender, occupation, history_item_ids), k,
        (allowed_genres, min_year, max_year), exclude_item_ids)

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                contract.K_INPUT,
                                *contract.RULE_INPUTS.values()])
  def recommend_unseen(self, user_id, age, gender, occupation,
                       history_item_ids, k, exclude_item_ids, allowed_genres,
                       min_year, max_year):
    """`recommend`, leaving out the items in `history_item_ids`."""
    return self._recommend(
        (user_id, age, gender, occupation, history_item_ids), k,
        (allowed_genres, min_year, max_year),
        tf.concat([history_item_ids, exclude_item_ids], axis=1))

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                contract.K_INPUT,
                                *contract.RULE_INPUTS.values()])
  def recommend_fast(self, user_id, age, gender, occupation,
                     history_item_ids, k, exclude_item_ids, allowed_genres,
                     min_year, max_year):
    """`recommend` without the why outputs: no leave-one-out pass (B x
    explain_window extra rows through the query tower)."""
    return self._recommend(
        (user_id, age, gender, occupation, history_item_ids), k,
        (allowed_genres, min_year, max_year), exclude_item_ids,
        explain=False)

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                contract.K_INPUT,
                                *contract.RULE_INPUTS.values()])
  def recommend_unseen_fast(self, user_id, age, gender, occupation,
                            history_item_ids, k, exclude_item_ids,
                            allowed_genres, min_year, max_year):
    """`recommend_unseen` without the why outputs."""
    return self._recommend(
        (user_id, age, gender, occupation, history_item_ids), k,
        (allowed_genres, min_year, max_year),
        tf.concat([history_item_ids, exclude_item_ids], axis=1),
        explain=False)

  @tf.function(input_signature=[contract.QUERY_INPUT, contract.K_INPUT,
                                *contract.RULE_INPUTS.values()])
  def search(self, query, k, exclude_item_ids, allowed_genres, min_year,
             max_year):
    """Free text -> the same catalogue index `recommend` uses. An empty
    query browses (_browse_empty_queries): what a visitor with no profile
    is recommended."""
    encoded, text_query, candidates, duplicate = self._search_candidates(query)
    rules = (allowed_genres, min_year, max_year)
    out = self._pick(
        k, candidates, self._search_score(encoded, text_query),
        self.rules.eligible(tf.shape(query)[0], exclude_item_ids, *rules),
        ~duplicate)
    out.update(self._unexplained(out[contract.ITEM_IDS], contract.REASON_TEXT))

    def visitor():
      batch = tf.shape(query)[0]
      nobody = tf.fill([batch], "")
      user = (nobody, tf.zeros([batch], tf.int64), nobody, nobody,
              tf.fill([batch, 1], ""))
      top = self._recommend(user, k, rules, exclude_item_ids, explain=False)
      top.update(self._unexplained(top[contract.ITEM_IDS],
                                   contract.REASON_PROFILE))
      return top
    return self._browse_empty_queries(query, out, visitor)

  def _unexplained(self, ids, reason):
    """The why outputs for `ids` [B, k] that no history item explains."""
    none = tf.fill(tf.shape(ids), "")
    return {contract.BECAUSE_ITEM_IDS: none, contract.BECAUSE_TITLES: none,
            contract.REASON: tf.where(tf.not_equal(ids, ""), reason, "")}

  def _browse_empty_queries(self, query, out, browse):
    """`out` with the rows of empty (or blank) queries taken from
    browse(), the same user's `recommend`, as a catalogue's search box
    lists its default order before anything is typed. Text matching has
    nothing to go on there: an empty query's BERT vector is closest to the
    items with the least text (ML-100K's item 267, titled "unknown"). Only
    batches holding an empty query run browse()."""
    # Unicode spaces and invisible characters too (BERT drops them all).
    empty = tf.equal(tf.strings.regex_replace(query, r"[\s\p{Z}\p{C}]+", ""),
                     "")

    def merged():
      other = browse()
      return {key: tf.where(empty[:, tf.newaxis], other[key], value)
              for key, value in out.items()}
    return tf.cond(tf.reduce_any(empty), merged, lambda: out)

  def _search_candidates(self, query):
    """(BERT vectors [B, text_dim], tower query [B, d], candidate ids
    [B, 2 * depth], duplicate [B, 2 * depth] bool) for a text query.

    Candidates come from two places: the shared index searched with the
    learned text tower (what people watch) and the catalogue's closest item
    texts by the direct match of frozen BERT vectors (what the words say;
    this also finds items too new for the tower to place well, e.g. right
    after a catalogue refresh). An item found both ways counts once.
    """
    encoded = self.towers.encode_text(query)
    text_query = self.towers.text_query(encoded)
    _, from_index = self.index(text_query)
    catalogue_text = self.item_text_vectors[:-1]
    _, rows = tf.math.top_k(
        tf.matmul(encoded, catalogue_text, transpose_b=True),
        k=tf.minimum(tf.shape(from_index)[1], tf.shape(catalogue_text)[0]))
    from_text = tf.gather(self.catalog_ids, rows)
    twice = tf.reduce_any(tf.equal(from_text[:, :, tf.newaxis],
                                   from_index[:, tf.newaxis, :]), axis=-1)
    ids = tf.concat([from_index, from_text], axis=1)
    return (encoded, text_query, ids,
            tf.concat([tf.zeros_like(twice), twice], axis=1))

  def _search_score(self, encoded, text_query):
    """score(ids, ok): tower score + text_match_weight * direct match."""
    def score(ids, ok):
      del ok
      item_text = tf.gather(self.item_text_vectors, self.rows.lookup(ids))
      return (tf.einsum("bd,bkd->bk", text_query,
                        self.indexed_item_vectors(ids)) +
              self.text_match_weight *
              tf.einsum("bd,bkd->bk", encoded, item_text))
    return score

  @tf.function(input_signature=[contract.QUERY_INPUT,
                                *contract.USER_INPUTS.values(),
                                contract.K_INPUT,
                                *contract.RULE_INPUTS.values()])
  def personalized_search(self, query, user_id, age, gender, occupation,
                          history_item_ids, k, exclude_item_ids,
                          allowed_genres, min_year, max_year):
    """`search` for one user: the text query picks the candidates from the
    shared index (what matches), the user's taste re-orders them:
    score = search score + personalization_weight * taste, where taste is
    the user's cosine standardised over the candidates and put on the search
    scores' scale: the weight says how many spreads of search score one
    spread of taste is worth, whatever the training length made the raw
    cosines' range (a briefly trained model's cosines barely differ, and a
    raw weight then re-ordered nothing). Relevance stays with the text; among
    the items that match, the user's come first. Empty user fields make this
    `search` with an average user's tilt. Reason `text`; because_* is a
    history item that raised the item's taste (_explain). An empty query
    browses: that user's `recommend` (_browse_empty_queries)."""
    user = (user_id, age, gender, occupation, history_item_ids)
    encoded, text_query, candidates, duplicate = self._search_candidates(query)
    taste_of = self._dot(self._query(*user))
    search_score = self._search_score(encoded, text_query)

    def score(ids, ok):
      scores, taste = search_score(ids, ok), taste_of(ids, ok)
      taste_mean, taste_spread = _moments(taste, ok)
      _, score_spread = _moments(scores, ok)
      taste = (taste - taste_mean) / (taste_spread + 1e-6) * score_spread
      return scores + self.personalization_weight * taste

    rules = (allowed_genres, min_year, max_year)
    out = self._pick(
        k, candidates, score,
        self.rules.eligible(tf.shape(query)[0], exclude_item_ids, *rules),
        ~duplicate)
    out.update(self._explain(user, out[contract.ITEM_IDS],
                             contract.REASON_TEXT))
    return self._browse_empty_queries(
        query, out, lambda: self._recommend(user, k, rules, exclude_item_ids))

  @tf.function(input_signature=[*contract.SIMILAR_INPUTS.values(),
                                contract.K_INPUT,
                                *contract.RULE_INPUTS.values()])
  def similar_items(self, item_ids, title, year, genres, k,
                    exclude_item_ids, allowed_genres, min_year, max_year):
    """Nearest items to each of `item_ids` [B] in the candidate space (the
    space recommend scores in), the item itself excluded. A catalogue item
    uses its indexed vector; an id the model has never indexed is placed by
    its title, year and genres through the candidate tower (cold start), and
    must come with a title or genres."""
    known = self._in_catalog(item_ids)
    described = tf.not_equal(title, "") | tf.reduce_any(
        tf.not_equal(genres, ""), axis=1)
    check = tf.debugging.Assert(
        tf.reduce_all(known | described),
        ["Item ids not in the catalogue need a title or genres to find "
         "neighbours for a new item:", tf.boolean_mask(
             item_ids, ~(known | described))], summarize=5)
    with tf.control_dependencies([check]):
      indexed = self.indexed_item_vectors(item_ids)
    vectors = tf.cond(
        tf.reduce_all(known), lambda: indexed,
        lambda: tf.where(known[:, tf.newaxis], indexed,
                         self.towers.candidates(item_ids, title, year,
                                                genres)))
    vectors = tf.ensure_shape(vectors, [None, self.item_vectors.shape[1]])
    _, candidates = self.index(vectors)
    exclude = tf.concat([item_ids[:, tf.newaxis], exclude_item_ids], axis=1)
    return self._pick(
        k, candidates, self._dot(vectors),
        self.rules.eligible(tf.shape(item_ids)[0], exclude, allowed_genres,
                            min_year, max_year))

  @tf.function(input_signature=[*contract.ITEM_INPUTS.values()])
  def embed_items(self, item_id, title, year, genres):
    """Candidate vectors from item text and metadata, encoded in-graph."""
    return {contract.VECTORS: self.towers.candidates(item_id, title, year,
                                                     genres)}

  @tf.function(input_signature=[tf.TensorSpec(None, tf.string)])
  def indexed_item_vectors(self, item_ids):
    """Vectors the index holds for `item_ids` (any shape); unknown ids get
    the out-of-vocabulary item's vector. Not a signature: a method kept in
    the SavedModel for tools and tests."""
    return tf.gather(self.item_vectors, self.rows.lookup(item_ids))

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                contract.ITEM_IDS_INPUT])
  def rank(self, user_id, age, gender, occupation, history_item_ids, item_ids):
    query = self._query(user_id, age, gender, occupation, history_item_ids)
    scores = self._ratings(query[:, tf.newaxis, :],
                           self.indexed_item_vectors(item_ids))[..., 0]
    return {contract.SCORES: scores}

  @tf.function(input_signature=[contract.EXAMPLES_INPUT])
  def evaluate(self, examples):
    """For TFMA: predicted rating, and where the rated item lands in the
    top EVAL_TOP_K of what `recommend_unseen` returns for the example's user
    (every item the user rated before excluded: a user does not re-rate a
    movie): in the top 100, in the top 10, and its NDCG@10 gain. Eval
    examples list every earlier item (features.RATED_BEFORE); examples
    without that list exclude their history only."""
    spec = features.raw_feature_spec()
    parsed = tf.io.parse_example(examples, {
        key: spec[key] for key in (features.ITEM_ID, features.HISTORY,
                                   features.RATED_BEFORE)})
    if self.reads_history_text:
      query, rating = self.towers.score_examples_with_history_text(
          examples, *self._history_text(parsed[features.HISTORY].values))
    else:
      query, rating = self.towers.score_examples(examples)
    seen = tf.sparse.to_dense(tf.sparse.concat(
        1, [parsed[features.HISTORY], parsed[features.RATED_BEFORE]],
        expand_nonconcat_dims=True), default_value="")
    batch = tf.shape(query)[0]
    _, candidates = self.index(query)
    top = self._pick(tf.constant(contract.EVAL_TOP_K), candidates,
                     self._retrieval_score(query, tf.sparse.to_dense(
                         parsed[features.HISTORY], default_value="")),
                     self.rules.eligible(batch, seen, tf.fill([batch, 0], ""),
                                         tf.zeros([batch], tf.int64),
                                         tf.zeros([batch], tf.int64)),
                     rerank=self._ranking_stage(query))
    found = tf.equal(top[contract.ITEM_IDS], parsed[features.ITEM_ID])
    hit = tf.reduce_any(found, axis=1)
    hit_at_10 = tf.reduce_any(found[:, :10], axis=1)
    rank = tf.cast(tf.argmax(tf.cast(found, tf.int32), axis=1), tf.float32)
    gain = tf.where(hit_at_10, tf.math.log(2.0) / tf.math.log(rank + 2.0), 0.0)
    return {contract.EVAL_RATING: rating,
            contract.EVAL_HIT: tf.cast(hit, tf.float32),
            contract.EVAL_HIT_AT_10: tf.cast(hit_at_10, tf.float32),
            contract.EVAL_NDCG_AT_10: gain}


def export_catalog(towers: Towers, item_ids: np.ndarray, titles: np.ndarray,
                   item_years: np.ndarray, item_genres: np.ndarray,
                   item_vectors: np.ndarray,
                   item_text_vectors: Optional[np.ndarray],
                   settings: IndexSettings, export_dir: str,
                   scann: bool = True,
                   item_item: Optional[item_item_lib.Matrix] = None
                   ) -> RecommenderModule:
  """Indexes `item_vectors` ([N + 1, d], OOV last) and saves the stock
  (brute-force) SavedModel at `export_dir` and, with `scann`, its ScaNN twin
  (contract.scann_twin), its search widened until it finds
  `settings.scann_min_recall` of exact search's top k (index.checked_scann);
  returns the stock module. item_years [N] and
  item_genres [N, G] ("" pads) are what the request-time filters read;
  item_item [N, N] the item-item term's matrix, or its PrunedRows
  (settings say whether it is on, its weight and decay). The
  Trainer and the catalogue refresh both export through here."""
  def module(index) -> RecommenderModule:
    return RecommenderModule(
        towers, item_ids=item_ids, titles=titles, item_vectors=item_vectors,
        max_k=settings.max_k, item_years=item_years, item_genres=item_genres,
        explain_window=settings.exclude_margin,
        item_text_vectors=item_text_vectors,
        text_match_weight=settings.text_match_weight,
        personalization_weight=settings.personalization_weight,
        explanation_min_share=settings.explanation_min_share,
        rerank_weight=settings.rerank_weight,
        rerank_depth=settings.rerank_depth, index=index,
        item_item=item_item, item_item_weight=settings.item_item_weight,
        item_item_decay=settings.item_item_decay)

  candidates = item_vectors[:-1]
  if scann:
    # Checked first: the stock model records the knobs the twin ends with.
    scann_index, settings = checked_scann(candidates, item_ids, settings)
  stock = module(make_index("brute_force", candidates, item_ids,
                            settings.index_k, settings.exclude_margin))
  save(stock, export_dir)
  settings.write(export_dir)
  if scann:
    twin = contract.scann_twin(export_dir)
    save(module(scann_index), twin)
    settings.write(twin)
  return stock


def save(module: RecommenderModule, export_dir: str,
         model_name: str = contract.MODEL_NAME) -> None:
  """Saves the SavedModel plus TF Serving warm-up records for each signature."""
  signatures = {
      contract.RECOMMEND: module.recommend,
      contract.RECOMMEND_UNSEEN: module.recommend_unseen,
      contract.RECOMMEND_FAST: module.recommend_fast,
      contract.RECOMMEND_UNSEEN_FAST: module.recommend_unseen_fast,
      contract.SERVING_DEFAULT: module.recommend_unseen,
      contract.RANK: module.rank,
      contract.EVALUATE: module.evaluate,
  }
  if module.has_text:
    signatures[contract.SEARCH] = module.search
    signatures[contract.PERSONALIZED_SEARCH] = module.personalized_search
    signatures[contract.EMBED_ITEMS] = module.embed_items
  signatures[contract.SIMILAR_ITEMS] = module.similar_items
  scann = isinstance(module.index, tfrs.layers.factorized_top_k.ScaNN)
  tf.saved_model.save(module, export_dir, signatures=signatures,
                      options=SCANN_SAVE_OPTIONS if scann else None)
  from trainer import warmup
  warmup.write_warmup(export_dir, model_name, signatures,
                      item_id=module.first_item_id)
