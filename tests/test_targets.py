"""bench/targets.py reads issue 13's targets off bench-quality's rows."""
import json

from bench import targets


def _row(name, recall10, recall50=0.4, recall100=0.6, ndcg=0.1,
         examples=1000):
  return {"name": name, "recall@10": recall10, "recall@50": recall50,
          "recall@100": recall100, "ndcg@10": ndcg, "examples": examples}


def _rows(no_text_recall50=0.4):
  return [_row("popularity", 0.05, 0.2, 0.3, 0.02),
          _row("ease", 0.15, 0.35, 0.5, 0.07),
          _row("sasrec", 0.16, 0.38, 0.55, 0.08),
          _row("full", 0.18),
          _row("full_cold_start", 0.0, 0.05, 0.2, 0.0, 50),
          _row("no_text", 0.18, no_text_recall50),
          _row("no_text_cold_start", 0.0, 0.05, 0.1, 0.0, 50),
          {"name": "text_tower_cost", "vs_no_text": 1.3}]


def test_every_target_met_reads_yes_and_exits_0(tmp_path):
  checked = targets.check(_rows())
  assert all(t.met for t in checked), checked
  assert "1.125x sasrec" in [t.measured for t in checked][4]
  path = tmp_path / "quality.json"
  path.write_text(json.dumps(_rows()))
  assert targets.main(["targets", str(path)]) == 0


def test_one_interaction_behind_no_text_is_a_missed_target(tmp_path):
  """Read strictly: recall@50 one interaction in 1,000 below no_text's
  misses that target alone, and the exit code says so."""
  rows = _rows(no_text_recall50=0.401)
  missed = [t for t in targets.check(rows) if not t.met]
  assert [t.target for t in missed] == ["full >= no_text on recall@50"]
  assert "(-1 of 1000 interactions)" in missed[0].measured
  path = tmp_path / "quality.json"
  path.write_text(json.dumps(rows))
  assert targets.main(["targets", str(path)]) == 1


def test_within_noise_reads_the_runs_own_intervals():
  """With full_gaps, one more line: met while every warm column's interval
  reaches 0 (the strict lines still read the point estimates)."""
  def gap(value, low, high):
    return {"gap": value, "low": low, "high": high}

  noise = {c: gap(0.0, -0.001, 0.001) for c in targets.WARM_COLUMNS}
  rows = _rows(no_text_recall50=0.401) + [
      {"name": "full_gaps", "gaps": {"no_text": noise}}]
  checked = {t.target: t for t in targets.check(rows)}
  line = checked["full >= no_text on every warm column within noise "
                 "(95% over users)"]
  assert line.met and "every interval reaches 0" in line.measured
  assert not checked["full >= no_text on recall@50"].met
  noise["recall@50"] = gap(-0.002, -0.003, -0.001)
  line = targets.check(rows)[-2]
  assert not line.met and line.measured.endswith("recall@50")
