"""vbayes: variational latent-variable models of images in pure JAX.

The public API; each name imports its module on first use, so that
`import vbayes.config` stays light.

    configs      TrainConfig, ModelConfig, DataConfig, Study, objective_config,
                 part_config, with_overrides         (vbayes.config, vbayes.models.config,
                                                      vbayes.parts, vbayes.overrides)
    models       Model, build                        the composed model (vbayes.models)
    objectives   objectives                          the registry (vbayes.objectives)
    data         load_data, to_float
    training     run, trained_params                 a whole run in a workdir (vbayes.training.loop)
                 make_update, init_state, make_train_chunk   the jitted step (vbayes.training.step)
    evaluation   evaluate_test_set, importance_sampled_log_likelihood,
                 quadrature_log_likelihood            (vbayes.evaluation.importance_sampling, vbayes.evaluation.grid)
"""

import importlib

__version__ = "0.1.0"

_API = {
    "TrainConfig": ("vbayes.config", "TrainConfig"),
    "ModelConfig": ("vbayes.models.config", "ModelConfig"),
    "part_config": ("vbayes.parts", "part_config"),
    "DataConfig": ("vbayes.config", "DataConfig"),
    "Study": ("vbayes.config", "Study"),
    "objective_config": ("vbayes.config", "objective_config"),
    "with_overrides": ("vbayes.overrides", "with_overrides"),
    "Model": ("vbayes.models", "Model"),
    "build": ("vbayes.models", "build"),
    "objectives": ("vbayes.objectives", None),
    "load_data": ("vbayes.data", "load"),
    "to_float": ("vbayes.data", "to_float"),
    "run": ("vbayes.training.loop", "run"),
    "trained_params": ("vbayes.training.loop", "trained_params"),
    "make_update": ("vbayes.training.step", "make_update"),
    "init_state": ("vbayes.training.step", "init_state"),
    "make_train_chunk": ("vbayes.training.step", "make_train_chunk"),
    "evaluate_test_set": ("vbayes.evaluation.importance_sampling", "evaluate"),
    "importance_sampled_log_likelihood": ("vbayes.evaluation.importance_sampling",
                                          "importance_sampled_log_likelihood"),
    "quadrature_log_likelihood": ("vbayes.evaluation.grid", "quadrature_log_likelihood"),
}
__all__ = sorted(_API)


def __getattr__(name: str):
  if name not in _API:
    raise AttributeError(f"module 'vbayes' has no attribute {name!r}")
  module_name, attribute = _API[name]
  module = importlib.import_module(module_name)
  return module if attribute is None else getattr(module, attribute)


def __dir__():
  return sorted([*globals(), *_API])
