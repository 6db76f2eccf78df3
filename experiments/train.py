r"""Trains a VAE, evaluates it on the test split and writes figures.

    python -m experiments.train --workdir=/tmp/vbayes/vae2d --manual_dir=../shared/data

Defaults: binarized MNIST (Larochelle's fixed binarization), 784-500-500-2
encoder and mirror decoder (ReLU), Bernoulli decoder, ELBO with analytic KL,
Adam 1e-3, batch 100, 10 epochs (5000 steps), test NLL with k=5000 importance
samples plus grid quadrature (2-D latents). On a 2-core CPU: about 20 s of
training (1.7 s per epoch) and 4-5 minutes of k=5000 evaluation. The README
gives the measured results of 100-epoch runs (2-D: 127.7 nats by quadrature).
Other objectives: --objective=iwae --k=50 --estimator=dreg, --objective=prior_is,
--objective=avb [--adaptive_contrast] (adversarial variational Bayes).

Re-running with the same --workdir resumes from its last checkpoint.
"""

from absl import flags

from experiments import common
from vbayes import config as config_lib
from vbayes import data as data_lib
from vbayes import trainer

FLAGS = flags.FLAGS
DEFAULT_K = {"iwae": 50, "prior_is": 128}
flags.DEFINE_string("workdir", None, "Folder for config, metrics, checkpoints and figures.",
                    required=True)
flags.DEFINE_enum("dataset", "binarized_mnist", config_lib.DATASETS, "Dataset.")
flags.DEFINE_enum("binarization", "auto", ("auto", *config_lib.BINARIZATIONS),
                  "auto: fixed for binarized_mnist and 4frames, dynamic for mnist.")
flags.DEFINE_enum("decoder", "auto", ("auto", *config_lib.LIKELIHOODS),
                  "Decoder p(x|z). auto: gaussian for --binarization=none, else bernoulli.")
flags.DEFINE_enum("objective", "elbo", config_lib.OBJECTIVES,
                  "elbo; iwae (encoder as proposal, --k samples); prior_is (decoder alone, "
                  "--k prior samples).")
flags.DEFINE_integer("k", None, "Samples per image for iwae and prior_is (default 50 and 128).")
flags.DEFINE_bool("adaptive_contrast", False, "avb: adaptive contrast (AVB+AC).")
flags.DEFINE_integer("avb_samples", 8, "avb: encoder samples per image per loss.")
flags.DEFINE_integer("avb_moment_samples", 128, "avb: encoder samples per image, apart from "
                     "the scored ones, for adaptive contrast's moments (0: the scored ones).")
flags.DEFINE_integer("noise_dim", 0, "avb: noise inputs of the implicit encoder (0: latent_dim).")
flags.DEFINE_list("adversary_hidden_sizes", ["256", "256"], "avb: hidden sizes of T(x, z).")
flags.DEFINE_float("adversary_learning_rate", 1e-3, "avb: Adam learning rate of the adversary.")
flags.DEFINE_integer("adversary_steps", 1, "avb: adversary updates per model update.")
flags.DEFINE_float("grad_clip", 0.0, "Clip gradients to this global norm (0: no clipping).")
flags.DEFINE_integer("kl_warmup_steps", 0, "avb: the KL weight rises linearly to 1 over "
                     "this many steps (0: no warm-up).")
flags.DEFINE_enum("estimator", "reparam", config_lib.ESTIMATORS,
                  "Encoder gradient estimator for iwae: reparam, stl or dreg.")
flags.DEFINE_integer("latent_dim", 2, "Latent dimension L.")
flags.DEFINE_list("hidden_sizes", ["500", "500"], "Encoder hidden sizes; the decoder mirrors them.")
flags.DEFINE_enum("activation", "relu", config_lib.ACTIVATIONS, "Hidden activation.")
flags.DEFINE_enum("kl_estimator", "analytic", config_lib.KL_ESTIMATORS, "KL term of the ELBO.")
flags.DEFINE_integer("epochs", 10, "Passes over the training split.")
flags.DEFINE_integer("batch_size", 100, "Images per step (divisible by the device count).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Root seed: init, data order, training noise and evaluation.")
flags.DEFINE_integer("steps_per_call", 100, "Steps fused in one jitted call = logging interval.")
flags.DEFINE_integer("eval_k", 5000, "Importance samples per test image for log p(x).")
flags.DEFINE_integer("quadrature_points", 512, "Grid points per axis for 2-D quadrature.")
flags.DEFINE_string("manual_dir", None,
                    f"Folder like ../shared/data for offline tfds preparation "
                    f"(default: ${data_lib.MANUAL_DIR_ENV}).")
flags.DEFINE_string("data_dir", None,
                    f"tfds data dir (default: ${data_lib.DATA_DIR_ENV} or ~/tensorflow_datasets).")


def build_config() -> config_lib.TrainConfig:
  """Flags -> frozen config; raises ConfigError naming the bad value."""
  binarization = FLAGS.binarization
  if binarization == "auto":
    binarization = config_lib.DATASET_BINARIZATIONS[FLAGS.dataset][0]
  likelihood = FLAGS.decoder
  if likelihood == "auto":
    likelihood = "gaussian" if binarization == "none" else "bernoulli"
  hidden = _sizes("hidden_sizes")
  model = config_lib.ModelConfig(
      data_dim=4 if FLAGS.dataset == "4frames" else 784, latent_dim=FLAGS.latent_dim,
      hidden_sizes=hidden, activation=FLAGS.activation, likelihood=likelihood,
      encoder="implicit" if FLAGS.objective == "avb" else "gaussian", noise_dim=FLAGS.noise_dim)
  avb = config_lib.AVBConfig(
      adaptive_contrast=FLAGS.adaptive_contrast, samples=FLAGS.avb_samples,
      moment_samples=FLAGS.avb_moment_samples,
      adversary_hidden_sizes=_sizes("adversary_hidden_sizes"),
      adversary_learning_rate=FLAGS.adversary_learning_rate, adversary_steps=FLAGS.adversary_steps)
  return config_lib.TrainConfig(
      model=model, data=config_lib.DataConfig(dataset=FLAGS.dataset, binarization=binarization),
      objective=FLAGS.objective,
      k=FLAGS.k if FLAGS.k is not None else DEFAULT_K.get(FLAGS.objective, 1),
      estimator=FLAGS.estimator, kl_estimator=FLAGS.kl_estimator, batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate, epochs=FLAGS.epochs, seed=FLAGS.seed,
      steps_per_call=FLAGS.steps_per_call, eval_k=FLAGS.eval_k,
      quadrature_points=FLAGS.quadrature_points, grad_clip=FLAGS.grad_clip,
      kl_warmup_steps=FLAGS.kl_warmup_steps, avb=avb)


def _sizes(name: str) -> tuple[int, ...]:
  try:
    return tuple(int(h) for h in FLAGS[name].value)
  except ValueError as e:
    raise config_lib.ConfigError(f"{name} must be integers, got {FLAGS[name].value}") from e


def main(argv):
  del argv
  trainer.run(build_config(), FLAGS.workdir, data_dir=FLAGS.data_dir,
              manual_dir=FLAGS.manual_dir, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
  common.run(main)
