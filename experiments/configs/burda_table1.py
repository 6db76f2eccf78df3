r"""The protocol of Burda, Grosse & Salakhutdinov (2016), Table 1, on MNIST: VAE and IWAE
with one and two stochastic layers, trained with k = 1, 5, 50 samples.

    python -m experiments.nll_table --config=burda_table1 --workdir=W \
        --runs=one_layer_iwae_k5 --manual_dir=../shared/data [--epochs=N: the first N only]

Data: MNIST from tfds, the 60000 training images dynamically binarized (a fresh
Bernoulli(pixel / 255) draw at every use), test on the 10000 test images binarized
once. Architecture (tanh): one layer, 784-200-200-50 encoder and its mirror as decoder;
two layers, 784-200-200-100 (z1), then 100-100-50 (z2), with p(z1|z2) 50-100-100-100
and p(x|z1) 100-200-200-784. Training: batch 20, Adam (beta1 0.9, beta2 0.999,
eps 1e-4), 3^i epochs at learning rate 0.001 * 10^(-i/7) for i = 0..7 (3280 epochs,
9.84 million steps). VAE rows maximize the k-sample ELBO (1/k) sum_i log w_i (the
Rényi bound at alpha = 1); IWAE rows the k-sample IWAE bound (k = 1 is the VAE's).
Evaluation: test NLL by importance sampling with k = 5000, and active units.

Runtime: the README's "The published protocol" section gives each row's measured CPU
throughput and projected wall time (bench/study_throughput.py); a row takes hours to
days on a 2-core CPU. Expected: the paper's Table 1 (`PUBLISHED` below, nats). The paper trained
on 60000 images; its code (yburda/iwae) held out the last 400 for validation.
"""

import dataclasses

from vbayes.config import DataConfig, ModelConfig, Study, TrainConfig, objective_config
from vbayes.models.networks import mlp
from vbayes.models.priors import two_layer

# (epochs, learning-rate multiplier) of each stage: 3^i epochs at 10^(-i/7), i = 0..7.
STAGES = tuple((3**i, 10 ** (-i / 7)) for i in range(8))

ONE_LAYER = ModelConfig(data_dim=784, latent_dim=50,
                        network=mlp.Config(hidden_sizes=(200, 200), activation="tanh"))
TWO_LAYERS = dataclasses.replace(ONE_LAYER, latent_dim=100, prior=two_layer.Config(
    latent_dim_2=50, hidden_sizes_2=(100, 100), activation="tanh"))

# Burda et al. (2016), Table 1 (MNIST, dynamic binarization): {run: (test NLL in nats,
# what the paper reports beside it)}.
PUBLISHED = {
    "one_layer_vae_k1": (86.76, "Burda et al. 2016, Table 1; 19 active units"),
    "one_layer_vae_k5": (86.47, "Burda et al. 2016, Table 1; 20 active units"),
    "one_layer_iwae_k5": (85.54, "Burda et al. 2016, Table 1; 22 active units"),
    "one_layer_vae_k50": (86.35, "Burda et al. 2016, Table 1; 20 active units"),
    "one_layer_iwae_k50": (84.78, "Burda et al. 2016, Table 1; 25 active units"),
    "two_layers_vae_k1": (85.33, "Burda et al. 2016, Table 1; 16+5 active units"),
    "two_layers_vae_k5": (85.01, "Burda et al. 2016, Table 1; 17+5 active units"),
    "two_layers_iwae_k5": (83.89, "Burda et al. 2016, Table 1; 21+5 active units"),
    "two_layers_vae_k50": (84.78, "Burda et al. 2016, Table 1; 17+5 active units"),
    "two_layers_iwae_k50": (82.90, "Burda et al. 2016, Table 1; 26+7 active units"),
}


def row(model: ModelConfig, objective) -> TrainConfig:
  return TrainConfig(model=model, data=DataConfig(dataset="mnist", binarization="dynamic"),
                     objective=objective, batch_size=20, learning_rate=1e-3, adam_eps=1e-4,
                     learning_rate_stages=STAGES, epochs=sum(e for e, _ in STAGES),
                     steps_per_call=500, checkpoint_every_epochs=1, eval_k=5000)


def get_config() -> Study:
  runs = []
  for layers, model in (("one_layer", ONE_LAYER), ("two_layers", TWO_LAYERS)):
    for k in (1, 5, 50):
      runs.append((f"{layers}_vae_k{k}", row(model, objective_config("renyi", k=k, alpha=1.0))))
      if k > 1:  # IWAE with k = 1 is the VAE
        runs.append((f"{layers}_iwae_k{k}", row(model, objective_config("iwae", k=k))))
  return Study(runs=tuple(runs))
