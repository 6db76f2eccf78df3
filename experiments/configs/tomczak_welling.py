r"""The protocol of Tomczak & Welling (2018), Table 2, static MNIST, one stochastic layer:
a VAE with the N(0, I) prior and with the VampPrior.

    python -m experiments.nll_table --config=tomczak_welling --workdir=W \
        --runs=vae_vampprior --manual_dir=../shared/data

Data: Larochelle's fixed binarization (tfds binarized_mnist): 50000 training images, the
10000 validation images for early stopping, the 10000 test images. Architecture: L = 40;
the encoder two gated dense layers of 300 units, h = (W1 x + b1) * sigmoid(W2 x + b2),
then a linear mean and a log-variance clipped to [-6, 2]; the decoder two gated layers of
300 and Bernoulli logits; He-normal weights. VampPrior: K = 500 pseudo-inputs, started
at 0.05 + 0.01 eps and clipped to [0, 1]. Training: the ELBO with the Monte Carlo KL
(log q(z|x) - log p(z) at the sampled z, as the paper), its KL weight rising linearly
to 1 over the first 100 epochs, batch 100, Adam at 5e-4, up to 2000 epochs, stopped
once more than 50 epochs (counted from epoch 100, the end of the warm-up) pass without a
better validation ELBO; the best checkpoint by validation ELBO is evaluated. Evaluation: test
NLL by importance sampling with k = 5000 from q(z|x), and active units.

Where this differs from the authors' code (read, not run): their Adam divides each
tensor's gradient by its norm first (the paper says Adam; this is plain Adam, and the
runs *_normalized_gradients use theirs, normalize_gradients); their
Bernoulli probabilities are clipped to [1e-5, 1 - 1e-5] (here exact logits); their
biases start at PyTorch's uniform default (here zero); their warm-up weight steps per
epoch (here per step). None of these can make a reported NLL lower than the model's.

Runtime: hours per run on a 2-core CPU (the README's literature card gives each run's).
Expected: the paper's Table 2 (`PUBLISHED` below).
"""

import dataclasses

from vbayes.config import DataConfig, ModelConfig, Study, TrainConfig, objective_config
from vbayes.models.networks import gated
from vbayes.models.priors import vamp
from vbayes.models.proposals import gaussian

STEPS_PER_EPOCH = 500  # 50000 training images, batch 100
WARMUP_EPOCHS = 100

VAE = ModelConfig(data_dim=784, latent_dim=40, network=gated.Config(hidden_sizes=(300, 300)),
                  proposal=gaussian.Config(log_var_limits=(-6.0, 2.0)))
VAMPPRIOR = dataclasses.replace(VAE, prior=vamp.Config(
    num_pseudo_inputs=500, pseudo_input_init=(0.05, 0.01), pseudo_input_limits=(0.0, 1.0)))

# Tomczak & Welling (2018), Table 2 (static MNIST, one stochastic layer): {run: (test NLL
# in nats, where it was published)}.
PUBLISHED = {
    "vae_standard": (88.56, "Tomczak & Welling 2018, Table 2: VAE, N(0, I) prior, L=40"),
    "vae_vampprior": (85.57, "Tomczak & Welling 2018, Table 2: VAE + VampPrior, K=500, L=40"),
}


def row(model: ModelConfig) -> TrainConfig:
  return TrainConfig(
      model=model, data=DataConfig(dataset="binarized_mnist", validation="split"),
      objective=objective_config("elbo", kl_estimator="mc",
                                 kl_warmup_steps=WARMUP_EPOCHS * STEPS_PER_EPOCH),
      batch_size=100, learning_rate=5e-4, epochs=2000, early_stopping_patience=50,
      early_stopping_from_epoch=WARMUP_EPOCHS, steps_per_call=STEPS_PER_EPOCH,
      checkpoint_every_epochs=1, validation_is_every_epochs=0, eval_k=5000)


def get_config() -> Study:
  return Study(runs=(
      ("vae_standard", row(VAE)), ("vae_vampprior", row(VAMPPRIOR)),
      # The authors' code's optimizer (each tensor's gradient over its norm, then Adam):
      # a variant that tells whether it explains a gap to the published numbers.
      ("vae_standard_normalized_gradients",
       dataclasses.replace(row(VAE), normalize_gradients=True)),
      ("vae_vampprior_normalized_gradients",
       dataclasses.replace(row(VAMPPRIOR), normalize_gradients=True)),
  ))
