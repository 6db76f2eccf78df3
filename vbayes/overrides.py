"""Field-by-field overrides of a frozen config, from text such as `model.latent_dim=50`.

    with_overrides(config, {"model.latent_dim": "50", "objective": "iwae",
                            "objective.k": "5"})

A path names a field of TrainConfig, of its model (ModelConfig), data (DataConfig)
or objective (the objective's Config); the text is parsed as the field's type
(a tuple from comma-separated items, a bool from true/false). All overrides are
applied, then the config is built and checked once, so that fields that must agree
can change together. Fields that follow others unless set too:
  objective (a name)  -> that objective's defaults, and model.encoder its encoder
                         (the config's own objective keeps its settings);
  data.dataset        -> model.data_dim, and data.binarization the dataset's default
                         (unless it is the config's dataset already);
  data.binarization   -> model.likelihood: gaussian for "none", else bernoulli.

For a Study (several runs), a path is `seeds`, `<run>.<path>` (one run; it wins over
a plain path) or a plain `<path>` (every run that has the field, an error if none
has it; `seed` is refused, the runs' seeds are `seeds`).
"""

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from vbayes import config as config_lib
from vbayes import datasets
from vbayes.config import ConfigError, Study, TrainConfig, require

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
PLURALS = {int: "integers", float: "numbers", str: "strings"}
PARTS = {"model": config_lib.ModelConfig, "data": config_lib.DataConfig}


def with_overrides(config, overrides: Mapping[str, str]):
  """`config` (a TrainConfig or a Study) with each `path: text` of `overrides` set."""
  if isinstance(config, Study):
    return _study_with_overrides(config, overrides)
  require(isinstance(config, TrainConfig), f"cannot override fields of {type(config).__name__}")
  d = config.to_dict()
  first = ("objective", "data.dataset")  # they reset fields that later paths may set
  for path in sorted(overrides, key=lambda p: p not in first):
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
    if len(names) == 1:  # a new objective: its defaults and its encoder
      if text == d["objective"]["name"]:
        return  # the same objective keeps its settings
      objective = config_lib.objective_config(text)
      d["objective"] = objective.to_dict()
      if "model.encoder" not in given:
        d["model"]["encoder"] = objective.encoder
      return
    _require_path(len(names) == 2, path)
    d["objective"][names[1]] = _parse(objective_cls, names[1], text, path,
                                      owner=f"objective {objective_cls.name}")
    return
  if names[0] in PARTS:
    _require_path(len(names) == 2, path)
    if path == "data.dataset" and text == d["data"]["dataset"]:
      return  # the same dataset keeps its binarization and the model's likelihood
    d[names[0]][names[1]] = _parse(PARTS[names[0]], names[1], text, path)
    if path == "data.dataset":
      dataset = datasets.DATASETS.get(d["data"]["dataset"])
      if dataset is not None:
        d["model"]["data_dim"] = dataset.data_dim
        if "data.binarization" not in given:
          d["data"]["binarization"] = dataset.binarizations[0]
    if path in ("data.dataset", "data.binarization") and "model.likelihood" not in given:
      d["model"]["likelihood"] = "gaussian" if d["data"]["binarization"] == "none" else "bernoulli"
    return
  _require_path(len(names) == 1, path)
  d[names[0]] = _parse(TrainConfig, names[0], text, path)


def _require_path(condition: bool, path: str):
  require(condition, f"no config field {path!r}: a path is a TrainConfig field (epochs), "
          "or model., data. or objective. and one of its fields (model.latent_dim)")


def _parse(cls: type, name: str, text: str, path: str, owner: str = ""):
  """`text` as the type of field `name` of dataclass `cls`."""
  fields = {f.name: f for f in dataclasses.fields(cls)}
  require(name in fields, f"no config field {path!r}: {owner or cls.__name__}'s fields are "
          f"{', '.join(sorted(fields)) or 'none'}")
  kind = typing.get_type_hints(cls).get(name, str)
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
  if names[0] in PARTS and len(names) == 2:
    return names[1] in {f.name for f in dataclasses.fields(PARTS[names[0]])}
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
