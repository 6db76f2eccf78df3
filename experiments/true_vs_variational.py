r"""The 2-D MNIST model, figure 4: the exact posterior of a half-observed test image
against the variational one.

    python -m experiments.true_vs_variational --workdir=/tmp/vbayes/mnist_2d --manual_dir=../shared/data

For the first test image of each of --digits, only the top 14 rows (392 pixels)
are observed. The exact p(z | x_top) ∝ p(x_top | z) p(z) is normalized on a grid
(the likelihood sums the 392 observed pixels only; vbayes.evaluation.grid, the same code as
the quadrature evaluation), and q(z) = N(m, diag v) is fitted to it by stochastic
VI (vbayes.svi, the per-image ELBO of the top half, Adam; the best of
--svi_restarts fits from starting points z ~ p(z)). Both are drawn as
50/90/99%-mass isocontours on the same axes with KL(q||p) and KL(p||q) computed
on the grid. The script also prints log p(x_top) by quadrature and q's ELBO (4096 samples):
their difference is KL(q||p), a check on both. Shared 2-D VAE of
experiments/mnist_2d_model.py. Writes workdir/figures/true_vs_variational.png.
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import common, mnist_2d_model
from vbayes import latent, svi
from vbayes.plots import latents as latent_plots
from vbayes.evaluation import grid

flags.DEFINE_list("digits", ["0", "2", "4", "7"], "One panel for the first test image of each.")
flags.DEFINE_integer("svi_steps", 1000, "Adam steps of each stochastic VI fit.")
flags.DEFINE_integer("svi_samples", 16, "Monte Carlo samples per ELBO gradient.")
flags.DEFINE_integer("svi_restarts", 64, "Fits from starting points z ~ p(z); the best ELBO is kept.")
flags.DEFINE_integer("points", 400, "Grid points per axis of the fine grid.")
FLAGS = flags.FLAGS
ELBO_SAMPLES = 4096  # for the printed ELBO of the fitted q


def main(argv):
  del argv
  digits = [int(d) for d in FLAGS.digits]
  config, params, data, figures, key = mnist_2d_model.load_model()
  fast = lambda name, small: small if FLAGS.fast and not FLAGS[name].present else FLAGS[name].value
  svi_steps, points = fast("svi_steps", 50), fast("points", 48)
  index = mnist_2d_model.first_of_each(data.test_labels, digits)
  x = jnp.asarray(data.test[index], jnp.float32)
  mask = svi.top_half_mask(data.image_shape)
  q_mean, q_log_var, trace = svi.fit_posterior_restarts(
      params, key, x, mask, model=config.model, restarts=fast("svi_restarts", 4),
      steps=svi_steps, num_samples=FLAGS.svi_samples, log=lambda line: print(line, flush=True))
  del trace
  log_p_top = grid.quadrature_log_likelihood(params, x, model=config.model, pixel_mask_D=mask,
                                             points=256 if FLAGS.fast else 512)
  elbo_keys = jax.random.split(jax.random.fold_in(key, 1), len(index))
  elbo = jax.vmap(lambda m, v, k, x_D: svi.masked_elbo(
      {"mean": m, "log_var": v}, params, k, x_D, mask, model=config.model,
      num_samples=ELBO_SAMPLES))(q_mean, q_log_var, elbo_keys, x)
  panels = []
  for b, (i, d) in enumerate(zip(index, digits)):
    panel = latent.posterior_vs_gaussian(params, x[b], q_mean[b], q_log_var[b],
                                         model=config.model, pixel_mask_D=mask, points=points,
                                         search_points=48 if FLAGS.fast else 128)
    panel.update(image=np.asarray(x[b]), title=f"test image {i} (a {d})")
    panels.append(panel)
    print(f"test image {i} (digit {d}): log p(x_top) {float(log_p_top[b]):.3f} (quadrature), "
          f"ELBO of q {float(elbo[b]):.3f}, difference {float(log_p_top[b] - elbo[b]):.3f} vs "
          f"KL(q||p) on the grid {panel['kl_qp']:.3f}; KL(p||q) {panel['kl_pq']:.3f}")
  path = figures / "true_vs_variational.png"
  latent_plots.save_true_vs_variational(panels, data.image_shape, path)
  print(f"wrote {path}")


if __name__ == "__main__":
  common.run(main)
