r"""4Frames, where the answer is known: a VAE, AVB and AVB with adaptive contrast
against the best possible log-likelihood, log 4 = 1.386 nats.

    python -m experiments.four_frames --workdir=W

The data is uniform over four 2x2 binary images with one pixel on. Every model
has a 2-D latent, a 4-64-64-2 ReLU decoder with a Bernoulli likelihood and a
mirror encoder (AVB's takes 2 noise inputs too; its adversary is 64-64 with 5
updates per model update and 8 encoder samples per image; adaptive contrast takes
its moments from 128 further samples), Adam 1e-3, batch 100, 10000 steps (1000
epochs of 1000 images), seeds 0, 1, 2; exact test NLL by 512² grid quadrature.
Runtime on a 2-core CPU: about 10 minutes for the nine runs.
Expected exact test NLL (mean ± sd over seeds): VAE 1.593 ± 0.033, AVB 1.404 ±
0.004, AVB+AC 1.401 ± 0.010 nats.
"""

from vbayes.config import DataConfig, ModelConfig, Study, TrainConfig
from vbayes.objectives import avb
from vbayes.models.networks import mlp


def get_config() -> Study:
  vae = TrainConfig(
      model=ModelConfig(data_dim=4, latent_dim=2, network=mlp.Config(hidden_sizes=(64, 64))),
      data=DataConfig(dataset="4frames"), epochs=1000, eval_k=1000,
      checkpoint_every_epochs=100)
  adversary = avb.Config(adversary_hidden_sizes=(64, 64), adversary_steps=5, samples=8,
                         moment_samples=128)
  return Study(runs=(
      ("vae", vae),
      ("avb", vae.replace_objective(adversary)),
      ("avb_ac", vae.replace_objective(adversary.replace(adaptive_contrast=True)))),
      seeds=(0, 1, 2))
