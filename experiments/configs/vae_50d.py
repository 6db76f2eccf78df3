r"""The README's 50-D VAE on fixed binarized MNIST.

    python -m experiments.train --config=vae_50d --workdir=W --manual_dir=../shared/data

As vae_2d with a 50-D latent: 784-500-500-50 ReLU encoder and mirror Bernoulli
decoder, ELBO with analytic KL, Adam 1e-3, batch 100, 100 epochs = 50000 steps,
seed 0; test NLL by importance sampling with k=5000.
Runtime on a 2-core CPU (peak ~200 GFLOP/s): about 3 minutes of training, 4-5 of
evaluation. Expected: test NLL 90.27 ± 0.25 nats, test ELBO −98.36, 17 of 50 units
active.
"""

from vbayes.config import ModelConfig, TrainConfig
from vbayes.models.networks import mlp


def get_config() -> TrainConfig:
  return TrainConfig(model=ModelConfig(latent_dim=50,
                                       network=mlp.Config(hidden_sizes=(500, 500))), epochs=100)
