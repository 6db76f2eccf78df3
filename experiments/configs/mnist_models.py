r"""The models researchers study, on the same budget: fixed binarized MNIST, 50 epochs each.

    python -m experiments.nll_table --config=mnist_models --workdir=W \
        --manual_dir=../shared/data [--runs=mlp_vae,iaf_vae]

Data: Larochelle's fixed binarization (tfds binarized_mnist), 50000 training images, the
10000 test images. Every run: batch 100, Adam 1e-3, 50 epochs (25000 steps), seed 0;
test NLL by importance sampling with k = 5000 from q(z|x), ± its standard error over
the test images; active units (per layer). Architectures (tanh), after Burda et al.
(2016): one stochastic layer 784-200-200-50 and its mirror; two layers 784-200-200-100
then 100-100-50, with p(z1|z2) 50-100-100-100 and p(x|z1) 100-200-200-784.
  mlp_vae            one layer, ELBO with the closed-form KL
  two_layer_vae      two layers, ELBO (Monte Carlo KL)
  two_layer_iwae_k5  two layers, IWAE k = 5
  vamp_prior_vae     one layer, VampPrior with 500 pseudo-inputs, ELBO (Monte Carlo KL)
                     with its KL weight rising from 0 to 1 over the first 10 epochs (without
                     it the encoder collapses onto the prior: KL -> 0 within 500 steps)
  iaf_vae            one layer, 2 IAF steps (MADEs of 200-200) on q, ELBO (Monte Carlo KL)
  conv_vae           3x3 stride-2 convolutions of 32 and 64 channels, then 200-200, and
                     the mirror (transposed convolutions), ELBO with the closed-form KL
Runtime: docs/studies/mnist_models.md gives each run's training and evaluation time on
a 2-core CPU (the conv VAE: 19 min and 41 min). Expected: that table's test NLL for
each run.
Published numbers (PUBLISHED) are the nearest setups we know; their protocols differ
(thousands of epochs, other architectures), as the README says.
"""

import dataclasses

from experiments.configs import burda_table1
from vbayes.config import DataConfig, Study, TrainConfig, objective_config
from vbayes.models.networks import conv
from vbayes.models.priors import vamp
from vbayes.models.proposals import iaf

ONE_LAYER, TWO_LAYERS = burda_table1.ONE_LAYER, burda_table1.TWO_LAYERS
ELBO_MC = objective_config("elbo", kl_estimator="mc")

# {run: (test NLL in nats, where and in which setup it was published)}
PUBLISHED = {
    "mlp_vae": (88.71, "Burda et al. 2016, Table 3 (fixed binarization, 3280 epochs): "
                "VAE, one layer, k=1"),
    "two_layer_vae": (88.08, "Burda et al. 2016, Table 3: VAE, two layers, k=1"),
    "two_layer_iwae_k5": (86.17, "Burda et al. 2016, Table 3: IWAE, two layers, k=5"),
    "vamp_prior_vae": (85.57, "Tomczak & Welling 2018: VAE + VampPrior (K=500), static "
                       "MNIST, gated 300-300 nets, warm-up, early stopping"),
}


def run(model, objective="elbo") -> TrainConfig:
  return TrainConfig(model=model, data=DataConfig(dataset="binarized_mnist"),
                     objective=objective, batch_size=100, learning_rate=1e-3, epochs=50,
                     eval_k=5000, checkpoint_every_epochs=5, steps_per_call=100)


def get_config() -> Study:
  return Study(runs=(
      ("mlp_vae", run(ONE_LAYER)),
      ("two_layer_vae", run(TWO_LAYERS, ELBO_MC)),
      ("two_layer_iwae_k5", run(TWO_LAYERS, objective_config("iwae", k=5))),
      ("vamp_prior_vae", run(dataclasses.replace(ONE_LAYER, prior=vamp.Config(
          num_pseudo_inputs=500)), ELBO_MC.replace(kl_warmup_steps=5000))),
      ("iaf_vae", run(dataclasses.replace(ONE_LAYER, proposal=iaf.Config(
          flow_steps=2, flow_hidden_sizes=(200, 200), activation="tanh")), ELBO_MC)),
      ("conv_vae", run(dataclasses.replace(ONE_LAYER, network=conv.Config(
          conv_channels=(32, 64), hidden_sizes=(200, 200), activation="tanh")))),
  ))
