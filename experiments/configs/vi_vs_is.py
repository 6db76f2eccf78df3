r"""Variational inference against importance sampling, done fairly: one 2-D latent
model trained by the ELBO, by IWAE (k=50) and by importance sampling with the prior
as proposal (K=128 and 512), with the same decoder, data and number of steps.

    python -m experiments.vi_vs_is --workdir=W --manual_dir=../shared/data

Fixed binarized MNIST, 784-200-200-2 ReLU networks (the prior-IS models have no
encoder), Bernoulli decoder, Adam 1e-3, batch 100, 10 epochs = 5000 steps, seed 0;
held-out NLL by 512² grid quadrature and by importance sampling with k=5000.
Runtime on a 2-core CPU: about 40 minutes, 30 of them the K=512 model.
Expected held-out NLL by quadrature: ELBO 142.80, IWAE-50 139.28, prior IS K=128
141.29, K=512 139.52 nats.
"""

from vbayes.config import ModelConfig, Study, TrainConfig
from vbayes.objectives import iwae, prior_is
from vbayes.models.networks import mlp


def get_config() -> Study:
  base = TrainConfig(model=ModelConfig(latent_dim=2,
                                       network=mlp.Config(hidden_sizes=(200, 200))), epochs=10)
  return Study(runs=(
      ("elbo", base),
      ("iwae_k50", base.replace_objective(iwae.Config(k=50))),
      ("prior_is_k128", base.replace_objective(prior_is.Config(k=128))),
      ("prior_is_k512", base.replace_objective(prior_is.Config(k=512)))))
