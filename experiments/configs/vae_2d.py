r"""The README's 2-D VAE on fixed binarized MNIST, whose log p(x) grid quadrature
computes exactly; also the model of the 2-D posterior figure scripts.

    python -m experiments.train --config=vae_2d --workdir=W --manual_dir=../shared/data

Larochelle's binarization (50000 training, 10000 test images), 784-500-500-2 ReLU
encoder and mirror Bernoulli decoder, ELBO with analytic KL, Adam 1e-3, batch 100,
100 epochs = 50000 steps, seed 0; test NLL by importance sampling (k=5000) and a
512² grid on [-5, 5]².
Runtime on a 2-core CPU (peak ~200 GFLOP/s): about 3 minutes of training, 5 of
evaluation. Expected: test NLL 127.7 nats by quadrature, 134.7 ± 0.5 by IS.
"""

from vbayes.config import ModelConfig, TrainConfig
from vbayes.models.networks import mlp


def get_config() -> TrainConfig:
  return TrainConfig(model=ModelConfig(latent_dim=2,
                                       network=mlp.Config(hidden_sizes=(500, 500))), epochs=100)
