r"""A VAE against AVB with adaptive contrast on binarized MNIST (the comparison of
Mescheder et al. 2017), with the same decoder, latent dimension and steps.

    python -m experiments.avb_vs_vae --workdir=W --manual_dir=../shared/data --kde_images=1000

Fixed binarized MNIST, 784-500-500-8 ReLU networks (AVB's encoder takes 8 noise
inputs too), Bernoulli decoder, Adam 1e-3, batch 100, 100 epochs = 50000 steps,
seed 0. The VAE maximizes the ELBO (analytic KL); AVB+AC scores 8 encoder samples
per image against a 256-256 adversary (one update per model update) and takes its
contrast's moments from 128 further samples. Test NLL by importance sampling with
k=5000 (AVB: the moment-matched Gaussian as proposal; on the first --kde_images
images also the kernel density of 1000 encoder samples).
Runtime on a 2-core CPU (peak ~190 GFLOP/s): about 20 minutes for the VAE, 71 for
AVB+AC, 8 of evaluation each and 1.5 per 1000 kernel-density images per model.
Expected test NLL: VAE 97.93 ± 0.32, AVB+AC 97.36 ± 0.32 nats; on the first 1000
images 98.15 and 96.72 (kernel density).
"""

from vbayes.config import ModelConfig, Study, TrainConfig
from vbayes.objectives import avb
from vbayes.models.networks import mlp


def get_config() -> Study:
  vae = TrainConfig(model=ModelConfig(latent_dim=8,
                                      network=mlp.Config(hidden_sizes=(500, 500))), epochs=100)
  return Study(runs=(
      ("vae", vae),
      ("avb_ac", vae.replace_objective(avb.Config(adaptive_contrast=True,
                                                  moment_samples=128)))))
