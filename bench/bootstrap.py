"""Is a gap between two models on one window more than which users are in it?

Seeds measure how much a gap moves with the weights and the data order; they
do not measure the window. Our windows are small (about 150-170 users, each
with many interactions), so a gap of a few interactions in thousands may
just be who happened to be in them. A paired user-level bootstrap answers
that: draw the window's users with replacement, keep all of each drawn
user's interactions (a user's interactions are not independent), and
recompute both models' metrics on the same draw. Both models are scored
on every draw, so what varies between them is the model alone. With
several seeds (paired: seed s of one model against seed s of the other),
each draw also draws the seeds with replacement and scores their mean
gap, so the interval covers both sources of noise: which users, and which
weights and data order.
"""
from typing import Dict, List

import numpy as np

# Resamples per gap: enough for stable 2.5/97.5 percentiles (their
# resampling error is well below the third decimal of the gaps we report).
RESAMPLES = 4000


def user_sums(values: np.ndarray, user_index: np.ndarray, n_users: int
              ) -> np.ndarray:
  """[n_users] the sum of each user's per-interaction `values`."""
  return np.bincount(user_index, weights=values, minlength=n_users)


def paired_gap(model: List[Dict[str, np.ndarray]],
               base: List[Dict[str, np.ndarray]], users: np.ndarray,
               resamples: int = RESAMPLES, seed: int = 0
               ) -> Dict[str, Dict[str, float]]:
  """model, base: per seed (paired by position), {metric: [n] per
  interaction} on the same window's interactions, whose users are `users`
  [n]. Per metric: the observed seed-mean gap model - base (a window's
  metric is the mean over its interactions), its 95% percentile interval
  over resamples of users and seeds, and the share of resamples where
  model >= base."""
  if len(model) != len(base) or not model:
    raise ValueError(f"need the same number of seeds of each model, "
                     f"got {len(model)} and {len(base)}")
  _, user_index = np.unique(users, return_inverse=True)
  n_users, n_seeds = int(user_index.max()) + 1, len(model)
  counts = np.bincount(user_index, minlength=n_users).astype(np.float64)
  rng = np.random.default_rng(seed)
  user_draws = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users),
                               size=resamples)
  seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds),
                                 size=resamples) / n_seeds
  interactions = user_draws @ counts
  out = {}
  for metric in model[0]:
    # [seeds, users]: each user's summed gap in each seed.
    gaps = np.stack([user_sums(m[metric] - b[metric], user_index, n_users)
                     for m, b in zip(model, base)])
    resampled = ((user_draws @ gaps.T) * seed_weights).sum(1) / interactions
    low, high = np.percentile(resampled, [2.5, 97.5])
    out[metric] = {"gap": float(gaps.mean(0).sum() / counts.sum()),
                   "low": float(low), "high": float(high),
                   "share_ahead_or_equal": float(np.mean(resampled >= 0)),
                   "users": n_users, "seeds": n_seeds}
  return out
