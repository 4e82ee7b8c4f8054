"""Changed code is not served from TFX's cache."""
import json
import shutil

from pipeline import beam
from pipeline import code_version
from pipeline import configs
from pipeline import pipeline


def test_the_fingerprint_follows_the_code_and_nothing_else(tmp_path):
  root = tmp_path / "checkout"
  shutil.copytree(code_version._ROOT + "/trainer", root / "trainer",
                  ignore=shutil.ignore_patterns("__pycache__"))
  before = code_version.fingerprint(code_version.TRANSFORM_SOURCES, str(root))
  assert before == code_version.fingerprint(code_version.TRANSFORM_SOURCES)
  # Compiled files and modules Transform does not run change nothing ...
  (root / "trainer" / "__pycache__").mkdir()
  (root / "trainer" / "__pycache__" / "preprocessing.pyc").write_bytes(b"x")
  (root / "trainer" / "export.py").write_text("# edited\n")
  assert code_version.fingerprint(code_version.TRANSFORM_SOURCES,
                                  str(root)) == before
  # ... while an edit to preprocessing changes Transform's and the
  # Trainer's fingerprint.
  trainer_before = code_version.fingerprint(code_version.TRAINER_SOURCES,
                                            str(root))
  with open(root / "trainer" / "preprocessing.py", "a") as f:
    f.write("\n# edited\n")
  assert code_version.fingerprint(code_version.TRANSFORM_SOURCES,
                                  str(root)) != before
  assert code_version.fingerprint(code_version.TRAINER_SOURCES,
                                  str(root)) != trainer_before


def test_transform_trainer_and_tuner_carry_their_code_fingerprint():
  config = configs.PipelineConfig(data_dir="/data", output_dir="/out",
                                  tune=True)
  graph = pipeline.create_pipeline(
      config, pipeline.train_args(10),
      pipeline.push_destination(config.serving_model_dir),
      beam.beam_pipeline_args())
  components = {c.id: c for c in graph.components}
  for node, sources in (("Transform", code_version.TRANSFORM_SOURCES),
                        ("RecommenderTrainer", code_version.TRAINER_SOURCES),
                        ("RecommenderTuner", code_version.TRAINER_SOURCES)):
    custom = components[node].exec_properties["custom_config"]
    custom = json.loads(custom) if isinstance(custom, str) else custom
    assert custom[code_version.CODE_FINGERPRINT_KEY] == \
        code_version.fingerprint(sources), node
