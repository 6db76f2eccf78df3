"""Run by tests/system/test_sharded.py in a process with 8 CPU devices: the same training chunk on
one device and data-parallel over a mesh of 8 must give the same parameters. Prints
one JSON line per objective named on the command line (one process for all of them)."""

import json
from pathlib import Path
import sys

import jax
import jax.numpy as jnp
import numpy as np

from vbayes import config as config_lib
from vbayes.training import step as training_step
from vbayes.models.networks import conv as conv_net
from vbayes.models.networks import mlp
from vbayes.models.priors import two_layer, vamp
from vbayes.models.proposals import iaf, implicit
from vbayes.objectives import avb, iwae, prior_is


def main(objective: str):
  assert jax.device_count() == 8, jax.devices()
  extra = {"elbo": {}, "iwae": {"objective": iwae.Config(k=4, estimator="dreg")},
           "prior_is": {"objective": prior_is.Config(k=4)},
           "iwae_vamp_prior": {"objective": iwae.Config(k=4, estimator="dreg")},
           "elbo_conv_net": {},
           "iwae_two_layers": {"objective": iwae.Config(k=4, estimator="dreg")},
           "iwae_iaf": {"objective": iwae.Config(k=4, estimator="stl")},
           "avb": {"objective": avb.Config(kl_warmup_steps=3, adaptive_contrast=True, samples=4,
                                           adversary_hidden_sizes=(16,))}}[objective]
  conv = objective.endswith("conv_net")
  data_dim = 16 if conv else 20  # 4x4 images for the conv net
  network = (conv_net.Config(hidden_sizes=(32,), conv_channels=(2,)) if conv
             else mlp.Config(hidden_sizes=(32,)))
  prior = (vamp.Config(num_pseudo_inputs=5) if objective.endswith("vamp_prior")
           else two_layer.Config(latent_dim_2=2, hidden_sizes_2=(8,))
           if objective.endswith("two_layers") else "standard_normal")
  proposal = (implicit.Config(hidden_sizes=(32,)) if objective == "avb"
              else iaf.Config(flow_hidden_sizes=(8,)) if objective.endswith("iaf")
              else "gaussian")
  config = config_lib.TrainConfig(**extra,
      model=config_lib.ModelConfig(data_dim=data_dim, latent_dim=3, network=network,
                                   prior=prior, proposal=proposal),
      data=config_lib.DataConfig(dataset="mnist", binarization="dynamic"), batch_size=16,
      steps_per_call=5, learning_rate=1e-3)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.integers(0, 256, size=(64, data_dim)), jnp.uint8)
  results, hlo = {}, {}
  for name, mesh in (("single", None), ("sharded", training_step.make_mesh())):
    chunk = training_step.make_train_chunk(training_step.make_update(config), batch_size=16,
                                       steps_per_call=2,
                                       steps_per_epoch=4, binarization="dynamic", mesh=mesh)
    state = training_step.replicate(training_step.init_state(jax.random.key(0), config), mesh)
    data = training_step.replicate(images, mesh)
    compiled = chunk.lower(state, data, jax.random.key(1), jax.random.key(2)).compile()
    hlo[name] = compiled.as_text()
    for _ in range(3):  # the executable just compiled, not a second compilation by jit
      state, _ = compiled(state, data, jax.random.key(1), jax.random.key(2))
    results[name] = state
  init = training_step.init_state(jax.random.key(0), config)
  diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                       results["single"]["params"], results["sharded"]["params"])
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                       init["params"], results["single"]["params"])
  leaf = jax.tree.leaves(results["sharded"]["params"])[0]
  return json.dumps({
      "objective": objective,
      "devices": jax.device_count(),
      "param_devices": len(leaf.sharding.device_set),
      "params_replicated": leaf.sharding.is_fully_replicated,
      # Data parallelism shows as a gradient all-reduce across the 8 devices.
      "sharded_all_reduce": "all-reduce" in hlo["sharded"],
      "single_all_reduce": "all-reduce" in hlo["single"],
      "max_abs_diff": max(jax.tree.leaves(diffs)),
      "params_changed": max(jax.tree.leaves(moved)),
  })


if __name__ == "__main__":  # sharded_check.py OUT_DIR OBJECTIVE...: OUT_DIR/results.jsonl
  out_dir = Path(sys.argv[1])
  out_dir.mkdir(parents=True, exist_ok=True)
  lines = [main(name) for name in sys.argv[2:] or ["elbo"]]
  (out_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
