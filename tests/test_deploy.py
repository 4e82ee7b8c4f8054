"""TF Serving deployment files parse and agree with the code's names."""
import os

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from trainer import contract

DEPLOY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "serving",
                      "deploy")


def test_model_configs_are_model_server_configs():
  """models.config: both variants (recsys serve, ScaNN-enabled TF Serving);
  tfserving.config: the stock model only (stock tensorflow/serving)."""
  names = {}
  for name in ("models.config", "tfserving.config"):
    config = text_format.Parse(open(os.path.join(DEPLOY, name)).read(),
                               model_server_config_pb2.ModelServerConfig())
    names[name] = [m.name for m in config.model_config_list.config]
    for model in config.model_config_list.config:
      assert model.model_version_policy.latest.num_versions == 1
  assert names == {
      "models.config": [contract.MODEL_NAME,
                        contract.scann_twin(contract.MODEL_NAME)],
      "tfserving.config": [contract.MODEL_NAME]}


def test_compose_and_kubernetes_manifests():
  compose = yaml.safe_load(open(os.path.join(DEPLOY, "docker-compose.yml")))
  command = compose["services"]["tf-serving"]["command"]
  assert "--enable_model_warmup=true" in command
  assert "--model_config_file=/config/tfserving.config" in command
  docs = list(yaml.safe_load_all(open(os.path.join(DEPLOY, "k8s",
                                                   "deployment.yaml"))))
  container = docs[0]["spec"]["template"]["spec"]["containers"][0]
  assert container["readinessProbe"]["httpGet"]["path"] == \
      f"/v1/models/{contract.MODEL_NAME}"
  service = yaml.safe_load(open(os.path.join(DEPLOY, "k8s", "service.yaml")))
  assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
