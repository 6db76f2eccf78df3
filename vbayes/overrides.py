"""Field-by-field overrides of a frozen config, from text such as `model.latent_dim=50`.

    with_overrides(config, {"model.latent_dim": "50", "objective": "iwae",
                            "objective.k": "5"})

A path names a field of TrainConfig, of its data (DataConfig) or objective (the
objective's Config), or of its model (ModelConfig): model.latent_dim; model.prior=vamp
chooses a part (vbayes.parts: network, likelihood, prior, proposal) with its defaults,
keeping the settings it shares with the part it replaces; model.prior.num_pseudo_inputs
sets a setting of the chosen part, and model.<setting> (model.hidden_sizes) that
setting of every chosen part that has it. The text is parsed as the field's type (a
tuple from comma-separated items, a bool from true/false). All overrides are applied,
then the config is built and checked once, so that fields that must agree can change
together. Fields that follow others unless set too:
  objective (a name)  -> that objective's defaults, and model.proposal the one it trains
                         where the model's does not fit it (the config's own objective
                         keeps its settings);
  data.dataset        -> model.data_dim, and data.binarization the dataset's default
                         (unless it is the config's dataset already);
  data.binarization   -> model.likelihood: bernoulli for binary pixels, gaussian for
                         "none" (unless the model's likelihood fits them already).
Paths of the flat model of earlier versions still work: model.encoder (gaussian,
implicit or none: the proposal), model.flow (iaf or none) and model.latent_dim_2 (> 0:
the two_layer prior with that many units in z2; 0: one layer).

For a Study (several runs), a path is `seeds`, `<run>.<path>` (one run; it wins over
a plain path) or a plain `<path>` (every run that has the field, an error if none
has it; `seed` is refused, the runs' seeds are `seeds`).
"""

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from vbayes import config as config_lib
from vbayes import datasets, parts
from vbayes.config import ConfigError, Study, TrainConfig, require
from vbayes.models import config as model_config

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
PLURALS = {int: "integers", float: "numbers", str: "strings"}
MODEL_FIELDS = ("data_dim", "latent_dim")


def with_overrides(config, overrides: Mapping[str, str]):
  """`config` (a TrainConfig or a Study) with each `path: text` of `overrides` set."""
  if isinstance(config, Study):
    return _study_with_overrides(config, overrides)
  require(isinstance(config, TrainConfig), f"cannot override fields of {type(config).__name__}")
  d = config.to_dict()
  first = ("objective", "data.dataset", "data.binarization",
           *(f"model.{name}" for name in (*parts.FAMILIES, *LEGACY_SWITCHES)))
  for path in sorted(overrides, key=lambda p: p not in first):  # they reset later paths
    _set(d, path, overrides[path], set(overrides))
  return TrainConfig.from_dict(d)


def parse_assignment(text: str) -> tuple[str, str]:
  """'model.latent_dim=50' -> ('model.latent_dim', '50')."""
  path, sep, value = text.partition("=")
  require(bool(sep) and bool(path.strip()),
          f"an override is path=value, like model.latent_dim=50; got {text!r}")
  return path.strip(), value.strip()


def _set(d: dict[str, Any], path: str, text: str, given: set[str]):
  """Sets the field at `path` of the config dict `d` (TrainConfig.to_dict's layout)."""
  names = path.split(".")
  if names[0] == "objective":
    objective_cls = config_lib.objective_configs()[d["objective"]["name"]]
    if len(names) == 1:  # a new objective: its defaults, and a proposal that fits it
      if text == d["objective"]["name"]:
        return  # the same objective keeps its settings
      objective = config_lib.objective_config(text)
      d["objective"] = objective.to_dict()
      proposal = parts.registry("proposal")[d["model"]["proposal"]["name"]]
      if not given & PROPOSAL_PATHS and not objective.needs <= proposal.offers:
        _choose(d["model"], "proposal", objective.proposal)
      return
    _require_path(len(names) == 2, path)
    d["objective"][names[1]] = _parse(objective_cls, names[1], text, path,
                                      owner=f"objective {objective_cls.name}")
    return
  if names[0] == "model":
    _require_path(len(names) in (2, 3), path)
    _set_model(d["model"], names[1:], text, path)
    return
  if names[0] == "data":
    _require_path(len(names) == 2, path)
    if path == "data.dataset" and text == d["data"]["dataset"]:
      return  # the same dataset keeps its binarization and the model's likelihood
    d["data"][names[1]] = _parse(config_lib.DataConfig, names[1], text, path)
    if path == "data.dataset":
      dataset = datasets.DATASETS.get(d["data"]["dataset"])
      if dataset is not None:
        d["model"]["data_dim"] = dataset.data_dim
        if "data.binarization" not in given:
          d["data"]["binarization"] = dataset.binarizations[0]
    if path in ("data.dataset", "data.binarization") and "model.likelihood" not in given:
      pixels = "grey" if d["data"]["binarization"] == "none" else "binary"
      if parts.registry("likelihood")[d["model"]["likelihood"]["name"]].pixels != pixels:
        _choose(d["model"], "likelihood", "gaussian" if pixels == "grey" else "bernoulli")
    return
  _require_path(len(names) == 1, path)
  d[names[0]] = _parse(TrainConfig, names[0], text, path)


def _choose(model: dict[str, Any], family: str, name: str):
  """model[family] becomes the part `name`: its defaults but for the settings it shares
  with the model's parts (model_config.chosen_part; all of them when it is the same part)."""
  model[family] = model_config.chosen_part(model, family, name)


def _legacy_encoder(model, text):
  if text == "gaussian" and model["proposal"]["name"] == "iaf":
    return  # the flat model's flow follows its Gaussian encoder
  _choose(model, "proposal", {"none": "prior"}.get(text, text))


def _legacy_flow(model, text):
  require(text in ("none", "iaf"), f"model.flow={text!r}: a flow is none or iaf")
  if text == "iaf" or model["proposal"]["name"] == "iaf":
    _choose(model, "proposal", "gaussian" if text == "none" else text)


def _legacy_latent_dim_2(model, text):
  units = _parse_text(int, text, "model.latent_dim_2")
  if units > 0:
    _choose(model, "prior", "two_layer")
    model["prior"]["latent_dim_2"] = units
  elif model["prior"]["name"] == "two_layer":
    _choose(model, "prior", "standard_normal")


# Paths of the flat ModelConfig of earlier versions that chose parts.
LEGACY_SWITCHES = {"encoder": _legacy_encoder, "flow": _legacy_flow,
                   "latent_dim_2": _legacy_latent_dim_2}
PROPOSAL_PATHS = {"model.proposal", "model.encoder", "model.flow"}


def _set_model(model: dict[str, Any], names: list[str], text: str, path: str):
  """model.<field>, model.<family>, model.<family>.<setting> or model.<setting>."""
  head = names[0]
  if len(names) == 2:
    require(head in parts.FAMILIES, f"no config field {path!r}: a model path of three "
            f"names is model.<family>.<setting>, the families {', '.join(parts.FAMILIES)}")
    cls = parts.registry(head)[model[head]["name"]]
    model[head][names[1]] = _parse(cls, names[1], text, path, owner=f"{head} {cls.name}")
  elif head in MODEL_FIELDS:
    model[head] = _parse(config_lib.ModelConfig, head, text, path)
  elif head in parts.FAMILIES:
    _choose(model, head, text)
  elif head in LEGACY_SWITCHES:
    LEGACY_SWITCHES[head](model, text)
  else:
    having = _parts_with_setting(model, head)
    require(bool(having), f"no config field {path!r}: no part of this model has the setting "
            f"{head!r}" + _who_has(head))
    for family, cls in having:
      model[family][head] = _parse(cls, head, text, path)


def _parts_with_setting(model: dict[str, Any], setting: str) -> list[tuple[str, type]]:
  """(family, Config class) of each of the model's parts that has `setting`."""
  chosen = [(family, parts.registry(family)[model[family]["name"]]) for family in parts.FAMILIES]
  return [(family, cls) for family, cls in chosen if setting in parts.settings_of(cls)]


def _who_has(setting: str) -> str:
  owners = [f"the {cls.name} {family}" for family in parts.FAMILIES
            for cls in parts.registry(family).values() if setting in parts.settings_of(cls)]
  return (f" ({' and '.join(owners)} {'has' if len(owners) == 1 else 'have'} it; choose one "
          "with model.<family>=<name>)" if owners else f"; the model's fields are "
          f"{', '.join(MODEL_FIELDS)}, its parts {', '.join(parts.FAMILIES)}")


def _require_path(condition: bool, path: str):
  require(condition, f"no config field {path!r}: a path is a TrainConfig field (epochs), "
          "or model., data. or objective. and one of its fields (model.latent_dim)")


def _parse(cls: type, name: str, text: str, path: str, owner: str = ""):
  """`text` as the type of field `name` of dataclass `cls`."""
  fields = {f.name: f for f in dataclasses.fields(cls)}
  require(name in fields, f"no config field {path!r}: {owner or cls.__name__}'s fields are "
          f"{', '.join(sorted(fields)) or 'none'}")
  return _parse_text(typing.get_type_hints(cls).get(name, str), text, path)


def _parse_text(kind, text: str, path: str):
  try:
    return _parse_as(kind, text)
  except ValueError as e:
    raise ConfigError(f"{path}={text!r}: {e}") from None


def _parse_as(kind, text: str):
  if typing.get_origin(kind) is tuple:
    item = typing.get_args(kind)[0]
    try:
      return tuple(_parse_as(item, t.strip()) for t in text.split(",") if t.strip())
    except ValueError:
      raise ValueError(f"expected {PLURALS.get(item, item.__name__)} separated by commas") \
          from None
  if kind is bool:
    if text.lower() not in TRUE + FALSE:
      raise ValueError("expected true or false")
    return text.lower() in TRUE
  if kind is int:
    try:
      return int(text)
    except ValueError:
      raise ValueError("expected an integer") from None
  if kind is float:
    try:
      return float(text)
    except ValueError:
      raise ValueError("expected a number") from None
  return text


def _has_field(config: TrainConfig, path: str) -> bool:
  names = path.split(".")
  if names[0] == "objective" and len(names) == 2:
    return names[1] in {f.name for f in dataclasses.fields(config.objective)}
  if names[0] == "data" and len(names) == 2:
    return names[1] in {f.name for f in dataclasses.fields(config_lib.DataConfig)}
  if names[0] == "model" and len(names) == 3:
    return names[1] in parts.FAMILIES and names[2] in parts.settings_of(
        type(getattr(config.model, names[1])))
  if names[0] == "model" and len(names) == 2:
    return (names[1] in (*MODEL_FIELDS, *parts.FAMILIES, *LEGACY_SWITCHES)
            or bool(_parts_with_setting(config.model.to_dict(), names[1])))
  return len(names) == 1 and names[0] in {f.name for f in dataclasses.fields(TrainConfig)}


def _study_with_overrides(study: Study, overrides: Mapping[str, str]) -> Study:
  names = [name for name, _ in study.runs]
  per_run = {name: {} for name in names}
  seeds = study.seeds
  # Plain paths first, so that a run's own <run>.<path> wins whatever the order.
  for path, text in sorted(overrides.items(), key=lambda item: item[0].partition(".")[0]
                           in per_run):
    head, _, rest = path.partition(".")
    require(path != "seed", "a study's runs take their seeds from its seeds field: "
            "set seeds=..., e.g. --set=seeds=0,1")
    if path == "seeds":
      try:
        seeds = _parse_as(tuple[int, ...], text)
      except ValueError as e:
        raise ConfigError(f"seeds={text!r}: {e}") from None
    elif head in per_run and rest:
      per_run[head][rest] = text
    else:
      having = [name for name, config in study.runs if _has_field(config, path)]
      require(having, f"no run of this study has the field {path!r}: its runs are "
              f"{', '.join(names)}; name one as <run>.<path>, or set seeds")
      for name in having:
        per_run[name][path] = text
  return dataclasses.replace(
      study, seeds=seeds,
      runs=tuple((name, with_overrides(config, per_run[name])) for name, config in study.runs))
