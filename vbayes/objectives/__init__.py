"""Training objectives, one module each, in one registry.

Every module gives
    Config                       its settings: a frozen ObjectiveConfig with `name` and the
                                 `encoder` it trains
    init_state(key, model, config) -> {"params", "opt_state", "step"}
    make_update(model, config, steps_per_epoch=None)
                                 -> update(params, opt_state, step, key, x_BxD)
                                 -> (params, opt_state, metrics with "loss")
where `config` is the run's TrainConfig (config.objective is the module's Config) and
steps_per_epoch gives its learning-rate stages their length in steps.
The training loop calls these through `get(config.objective.name)` and knows no
objective by name. A new objective is a new module and one line below.
"""

from vbayes.objectives import avb, elbo, iwae, prior_is, renyi

REGISTRY = {
    "elbo": elbo,
    "iwae": iwae,
    "renyi": renyi,
    "prior_is": prior_is,
    "avb": avb,
}


def get(name: str):
  """The module of the objective called `name`."""
  if name not in REGISTRY:
    raise ValueError(f"unknown objective {name!r}: choose one of {tuple(REGISTRY)}")
  return REGISTRY[name]
