"""Which history item explains each recommendation (trainer/explanation)."""
import numpy as np
import pytest
import tensorflow as tf

from trainer.explanation import pick_because

# One user, four recommended items in rank order, a window of three history
# items: each row is how much each history item's removal lowers the item's
# score. Item 0 drives every score most.
DROPS = [[[1.0, 0.6, 0.1],
          [1.0, 0.7, 0.2],
          [1.0, 0.3, 0.9],
          [1.0, 0.2, 0.1]]]


def _pick(drops, valid, share):
  return pick_because(tf.constant(drops, tf.float32),
                      tf.constant(valid), share).numpy().tolist()


def test_share_one_names_the_strongest_history_item_every_time():
  assert _pick(DROPS, [[True, True, True]], 1.0) == [[0, 0, 0, 0]]


def test_a_strong_enough_item_that_explained_less_takes_over():
  # Share 0.5: the top item keeps its strongest (0); the second's 0.7 is
  # strong and unused; the third's 0.9 beats the once-used 0.6 alternative;
  # the fourth has only item 0 above the bar.
  assert _pick(DROPS, [[True, True, True]], 0.5) == [[0, 1, 2, 0]]
  # Share 0.25: everything above 0.25 qualifies; once each is used once,
  # the larger drop decides among equally used ones.
  assert _pick(DROPS, [[True, True, True]], 0.25) == [[0, 1, 2, 0]]
  assert _pick(DROPS, [[True, True, True]], 0.05) == [[0, 1, 2, 0]]


def test_empty_slots_and_negative_drops_never_explain():
  drops = [[[0.2, 5.0, 0.15], [-0.5, 9.0, -0.1]],
           # A history whose removal only ever raises the score: the least
           # raising item, never a share of a negative number.
           [[-0.3, -0.1, -0.2], [-0.3, -0.1, -0.2]]]
  valid = [[True, False, True], [True, True, True]]
  picks = _pick(drops, valid, 0.5)
  assert picks[0] == [0, 2]  # slot 1 is padding, however large its value
  assert picks[1] == [1, 1]


def test_an_item_nobody_may_explain_uses_up_nothing():
  """Per-item eligibility ([B, k, W]): an item with no eligible history
  item (a seen one, which export names "seen") leaves the picks of the
  items below it as if it were not in the list."""
  drops = [[[1.0, 0.9, 0.0],   # its strongest, 0
             [0.9, 1.0, 0.0],   # its strongest, 1
             [1.0, 0.9, 0.0],   # barred below
             [1.0, 0.9, 0.0]]]  # 0 and 1 used once each: the larger drop
  ok, barred = [True] * 3, [False] * 3
  assert _pick(drops, [[ok, ok, barred, ok]], 0.5)[0][:2] == [0, 1]
  assert _pick(drops, [[ok, ok, barred, ok]], 0.5)[0][3] == 0
  # Had the barred item spent slot 0 (as the same item allowed does), the
  # last would have been named 1.
  assert _pick(drops, [[ok, ok, ok, ok]], 0.5)[0] == [0, 1, 0, 1]
  # One slot barred for one item only.
  assert _pick(DROPS, [[ok, [True, False, True], ok, ok]], 0.5) == \
      [[0, 0, 2, 0]]


def test_it_runs_in_a_graph_with_unknown_sizes():
  spec = [tf.TensorSpec([None, None, None], tf.float32),
          tf.TensorSpec([None, None], tf.bool)]
  fn = tf.function(lambda d, v: pick_because(d, v, 0.5), input_signature=spec)
  out = fn(tf.constant(DROPS * 2, tf.float32),
           tf.constant([[True] * 3] * 2)).numpy()
  np.testing.assert_array_equal(out, [[0, 1, 2, 0]] * 2)
  # No returned items at all (k = 0).
  assert fn(tf.zeros([2, 0, 3]), tf.ones([2, 3], tf.bool)).shape == (2, 0)


def test_a_share_outside_zero_to_one_is_refused_before_anything_runs():
  """By the command line's config, before any runner is imported."""
  from pipeline import cli
  from trainer.config import TrainerConfig
  TrainerConfig(explanation_min_share=1.0).check()
  parser = cli.build_parser()
  for share in ("0", "1.5", "-0.5"):
    args = parser.parse_args(["pipeline", "run",
                              "--explanation-min-share", share])
    with pytest.raises(SystemExit, match="explanation_min_share"):
      cli.pipeline_config(args)


def test_printed_reasons_say_seen_history_and_profile_apart():
  from serving.local_model import format_explained
  result = {"item_ids": ["50", "7", "1"],
            "titles": ["Star Wars", "Twelve Monkeys", "Toy Story"],
            "scores": [0.6, 0.5, 0.4],
            "because_titles": ["Star Wars", "Empire Strikes Back, The", ""],
            "reason": ["seen", "history", "profile"]}
  lines = format_explained("1", result).splitlines()
  assert lines[2].strip() == "You have watched this before"
  assert lines[4].strip() == "Because you watched Empire Strikes Back, The"
  assert lines[6].strip() == "Popular with people like you (no history yet)"
