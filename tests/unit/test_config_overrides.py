"""Study configs (experiments/configs/) and field-by-field overrides (vbayes/overrides.py)."""

import dataclasses
import importlib
import json

import pytest

from experiments import configs
from vbayes import config as config_lib
from vbayes.config import ConfigError, Study, TrainConfig
from vbayes.objectives import avb, iwae
from vbayes.overrides import parse_assignment, with_overrides
from vbayes.models.likelihoods import gaussian as likelihood_gaussian
from vbayes.models.networks import gated, mlp
from vbayes.models.priors import mixture, two_layer, vamp
from vbayes.models.proposals import gaussian, iaf, implicit


def test_each_value_is_parsed_as_its_fields_type():
  config = with_overrides(TrainConfig(), {
      "epochs": "3", "learning_rate": "0.01", "model.hidden_sizes": "7, 9",
      "model.activation": "tanh", "objective": "avb", "objective.adaptive_contrast": "true",
      "objective.adversary_hidden_sizes": "5", "objective.adversary_learning_rate": "2e-4"})
  assert config.epochs == 3 and config.learning_rate == 0.01
  assert config.model.network == mlp.Config(hidden_sizes=(7, 9), activation="tanh")
  assert config.model.proposal == implicit.Config(hidden_sizes=(7, 9), activation="tanh")
  assert config.objective == avb.Config(adaptive_contrast=True, adversary_hidden_sizes=(5,),
                                        adversary_learning_rate=2e-4)


def test_a_new_objective_brings_its_defaults_and_a_proposal_that_fits_it_in_any_order():
  start = TrainConfig(objective=avb.Config(samples=3),
                      model=config_lib.ModelConfig(proposal="implicit"))
  for order in (("objective.k", "objective"), ("objective", "objective.k")):
    config = with_overrides(start, {path: {"objective": "iwae", "objective.k": "7"}[path]
                                    for path in order})
    assert config.objective == iwae.Config(k=7)
    assert config.model.proposal == gaussian.Config()
  assert with_overrides(TrainConfig(), {"objective": "prior_is"}).model.proposal.name == "prior"
  flow = with_overrides(TrainConfig(), {"model.proposal": "iaf", "objective.kl_estimator": "mc"})
  assert with_overrides(flow, {"objective": "iwae"}).model.proposal == iaf.Config()  # it fits


def test_a_part_path_chooses_a_part_or_sets_its_settings():
  config = with_overrides(TrainConfig(), {
      "model.prior.num_pseudo_inputs": "7", "model.prior": "vamp", "objective": "iwae",
      "model.network": "gated", "model.network.hidden_sizes": "5", "model.min_scale": "0.5",
      "data.dataset": "mnist", "data.binarization": "none"})
  assert config.model.prior == vamp.Config(num_pseudo_inputs=7)
  assert config.model.network == gated.Config(hidden_sizes=(5,))
  assert config.model.likelihood == likelihood_gaussian.Config(min_scale=0.5)
  mixed = with_overrides(config, {"model.prior": "mixture", "model.num_components": "3",
                                  "model.likelihood": "continuous_bernoulli"})
  assert mixed.model.prior == mixture.Config(num_components=3)
  assert mixed.model.likelihood.name == "continuous_bernoulli"


def test_switching_a_part_keeps_the_settings_it_shares_with_the_one_it_replaces():
  start = TrainConfig(model=config_lib.ModelConfig(
      network=mlp.Config(hidden_sizes=(7,), activation="tanh")))
  assert with_overrides(start, {"model.network": "gated"}).model.network == gated.Config(
      hidden_sizes=(7,))
  assert with_overrides(start, {"model.network": "mlp"}) == start


def test_the_flat_paths_of_earlier_versions_still_choose_parts():
  config = with_overrides(TrainConfig(), {"model.latent_dim_2": "3", "model.activation": "elu",
                                          "objective": "iwae"})
  assert config.model.prior == two_layer.Config(latent_dim_2=3, activation="elu")
  assert config.model.latent_layers == (2, 3)
  assert with_overrides(config, {"model.latent_dim_2": "0"}).model.prior.name == "standard_normal"
  flow = with_overrides(TrainConfig(), {"model.flow": "iaf", "model.flow_steps": "3",
                                        "objective.kl_estimator": "mc"})
  assert flow.model.proposal == iaf.Config(flow_steps=3)
  assert with_overrides(flow, {"model.flow": "none"}).model.proposal == gaussian.Config()
  avb_config = with_overrides(TrainConfig(), {"model.encoder": "implicit", "objective": "avb",
                                              "model.noise_dim": "4"})
  assert avb_config.model.proposal == implicit.Config(noise_dim=4)


def test_naming_the_configs_own_objective_or_dataset_keeps_their_settings():
  start = TrainConfig(objective=avb.Config(samples=3, adversary_steps=5),
                      model=config_lib.ModelConfig(proposal="implicit"))
  assert with_overrides(start, {"objective": "avb"}) == start
  grey = with_overrides(TrainConfig(), {"data.dataset": "mnist", "data.binarization": "none"})
  assert with_overrides(grey, {"data.dataset": "mnist"}) == grey


def test_a_dataset_brings_its_size_binarization_and_likelihood():
  config = with_overrides(TrainConfig(), {"data.dataset": "4frames"})
  assert config.model.data_dim == 4 and config.data.binarization == "fixed"
  grey = with_overrides(TrainConfig(), {"data.dataset": "mnist", "data.binarization": "none"})
  assert grey.data.binarization == "none" and grey.model.likelihood.name == "gaussian"
  binary = with_overrides(grey, {"data.binarization": "dynamic"})
  assert binary.model.likelihood.name == "bernoulli"
  continuous = with_overrides(grey, {"model.likelihood": "continuous_bernoulli"})
  assert with_overrides(continuous, {"data.binarization": "none"}) == continuous  # it fits


@pytest.mark.parametrize("overrides, message", [
    ({"model.latnt_dim": "3"}, "no config field 'model.latnt_dim': no part of this model has "
     "the setting 'latnt_dim'; the model's fields are data_dim, latent_dim"),
    ({"model.num_pseudo_inputs": "3"}, "no part of this model has the setting "
     "'num_pseudo_inputs' (the vamp prior has it; choose one with model.<family>=<name>)"),
    ({"model.prior.k": "3"}, "no config field 'model.prior.k': prior standard_normal's fields"),
    ({"model.prior": "flat"}, "unknown prior 'flat': choose one of"),
    ({"objective": "elbo", "model.proposal": "implicit"}, "objective 'elbo' needs a proposal "
     "that offers density; proposal 'implicit' offers implicit, reparameterized: use "
     "model.proposal=gaussian"),
    ({"model.prior": "vamp", "model.proposal": "iaf", "objective": "iwae"},
     "the vamp prior is made of the Gaussian encoder's posteriors; it needs proposal gaussian"),
    ({"epochs": "ten"}, "epochs='ten': expected an integer"),
    ({"model.hidden_sizes": "5,x"}, "model.hidden_sizes='5,x': expected integers"),
    ({"objective": "avb", "objective.adaptive_contrast": "maybe"}, "expected true or false"),
    ({"objective.k": "3"}, "no config field 'objective.k': objective elbo's fields are "
     "kl_estimator"),
    ({"objective": "gan"}, "unknown objective 'gan'"),
    ({"model.encoder.x": "1"}, "no config field 'model.encoder.x': a model path of three"),
    ({"epochs": "0"}, "epochs must be positive"),  # checked as the config is built
])
def test_a_bad_override_names_the_field_and_what_it_takes(overrides, message):
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    with_overrides(TrainConfig(), overrides)


def test_an_assignment_is_path_equals_value():
  assert parse_assignment(" model.latent_dim = 5") == ("model.latent_dim", "5")
  assert parse_assignment("objective.estimator=dreg") == ("objective.estimator", "dreg")
  with pytest.raises(ConfigError, match="an override is path=value"):
    parse_assignment("epochs")


def _study() -> Study:
  vae = TrainConfig(model=config_lib.ModelConfig(network=mlp.Config(hidden_sizes=(8,))))
  return Study(runs=(("vae", vae), ("avb", vae.replace_objective(avb.Config(samples=4)))),
               seeds=(0, 1))


def test_a_study_path_sets_every_run_that_has_it_or_the_run_it_names():
  study = with_overrides(_study(), {"epochs": "2", "objective.samples": "16",
                                    "vae.learning_rate": "0.5", "seeds": "3"})
  assert study.seeds == (3,)
  assert [c.epochs for _, c in study.runs] == [2, 2]
  assert study.run("avb").objective.samples == 16
  assert study.run("vae").learning_rate == 0.5 and study.run("avb").learning_rate == 1e-3
  assert set(study.configs()) == {("vae", 3), ("avb", 3)}
  assert study.configs()["avb", 3].seed == 3
  with pytest.raises(ConfigError, match="no run of this study has the field 'objective.k'"):
    with_overrides(_study(), {"objective.k": "5"})
  for order in ({"avb.objective.samples": "2", "objective.samples": "9"},
                {"objective.samples": "9", "avb.objective.samples": "2"}):
    assert with_overrides(_study(), order).run("avb").objective.samples == 2  # the run's wins
  with pytest.raises(ConfigError, match="a study's runs take their seeds from its seeds"):
    with_overrides(_study(), {"seed": "7"})
  with pytest.raises(ConfigError, match="this study's runs are vae, avb; got gan"):
    _study().select(["gan"])


@pytest.mark.parametrize("name", configs.names())
def test_every_study_config_builds_and_documents_its_command_runtime_and_result(name):
  config = configs.load(name)
  assert isinstance(config, (TrainConfig, Study))
  doc = importlib.import_module(f"experiments.configs.{name}").__doc__
  assert "python -m experiments." in doc and "Runtime" in doc and "Expected" in doc
  runs = config.runs if isinstance(config, Study) else (("", config),)
  for _, run in runs:  # round-trips through config.json as every run's workdir stores it
    assert TrainConfig.from_dict(json.loads(run.to_json())) == run


def test_a_config_file_outside_the_package_loads(tmp_path):
  path = tmp_path / "my_study.py"
  path.write_text("from vbayes.config import TrainConfig\n\n"
                  "def get_config():\n  return TrainConfig(epochs=7)\n")
  assert configs.load(str(path)) == dataclasses.replace(TrainConfig(), epochs=7)
  with pytest.raises(ConfigError, match="unknown config 'nope': choose one of avb_vs_vae"):
    configs.load("nope")
