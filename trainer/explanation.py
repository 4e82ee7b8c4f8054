"""Which history item explains each recommended item ("because you watched").

The exported model computes, for every returned item and every history item
the model reads, how much the item's score drops when that history item is
left out (a leave-one-out pass through the query tower; export._explain).
Naming the largest drop for every item is faithful, but one recent film
often drives the whole list: in the demo's model 31% of eval users were
given the same "because" for all ten recommendations (2.1 distinct
reasons per list). A list that says why ten times with one title says it
once.

So each item names, among the history items that account for at least
`min_share` of its largest drop, the one that has explained the fewest
items ranked above it (then the larger drop). The top item always gets its
largest drop; `min_share` 1 is the plain largest drop. Every named item
still lowers the score when removed by at least that share of what the
strongest one does, which bench-scenarios checks against a random other
history item (its faithful share) beside the reasons per list.

An item with no eligible history item (the caller's `valid` says, e.g. an
item the user has already watched, which export names as "seen" instead)
picks nothing and uses up nothing: the items below it are chosen as if it
were not there.
"""
import tensorflow as tf


def pick_because(drop: tf.Tensor, valid: tf.Tensor,
                 min_share: float) -> tf.Tensor:
  """[B, k] int32 index into the history window for each returned item.

  drop: [B, k, W] the item's score with the whole window minus its score
  without history item j (larger: item j mattered more), k in rank order.
  valid: [B, W] which window slots hold a history item, or [B, k, W] which
  may explain each item; items with none pick an arbitrary slot (the
  caller blanks them) without counting it as used."""
  if valid.shape.rank == 2:
    valid = valid[:, tf.newaxis, :]
  valid = tf.logical_and(valid, tf.ones_like(drop, tf.bool))
  # The lowest finite value, not -inf: no inf - inf or inf / inf below.
  drop = tf.where(valid, drop, drop.dtype.min)
  largest = tf.reduce_max(drop, -1, keepdims=True)
  # A share of a negative largest drop would admit worse items: then only
  # the largest qualifies.
  bar = tf.where(largest > 0, min_share * largest, largest)
  strong = (drop >= bar) & valid
  # Below 1 for every strong item, so the use count decides first.
  closeness = 0.5 * (1.0 - tf.math.divide_no_nan(drop, largest))

  def step(used, at):
    strong_here, closeness_here = at
    key = tf.where(strong_here, used + closeness_here, float("inf"))
    pick = tf.argmin(key, -1, output_type=tf.int32)
    counts = tf.reduce_any(strong_here, -1, keepdims=True)
    return used + tf.where(counts, tf.one_hot(pick, tf.shape(used)[-1]),
                           0.0), pick

  shape = tf.shape(drop)
  used = tf.zeros([shape[0], shape[2]], drop.dtype)
  # One extra step past the last item, dropped after: tf.scan cannot stack
  # zero steps of unknown shape, and a narrow filter may return no items.
  pad = lambda x: tf.transpose(  # noqa: E731  [k + 1, B, W]
      tf.pad(x, [[0, 0], [0, 1], [0, 0]]), [1, 0, 2])
  picks = tf.scan(lambda carry, at: step(carry[0], at),
                  (pad(strong), pad(closeness)),
                  initializer=(used, tf.zeros(shape[:1], tf.int32)))
  return tf.transpose(picks[1])[:, :shape[1]]
