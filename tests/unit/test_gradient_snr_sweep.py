"""gradient_snr.sweep's randomness: one noise per k, shared by the estimators, and
different for different k."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vbayes.evaluation import gradient_snr as gs


def test_sweep_shares_noise_across_estimators_and_not_across_k(monkeypatch):
  """With one key for every k, eps_BxKxL = normal(key, (B, k, L)) of a smaller k would
  be a prefix of a larger k's (JAX draws element i of a shape from the flat index i),
  so settings with different k would see the same noise. sweep must hand each k its
  own key, and every estimator at one k the same key."""
  key = jax.random.key(1)
  small, large = (jax.random.normal(key, (1, k, 2)) for k in (1, 4))
  assert np.array_equal(small, large[:, :1])  # why one key for every k is not enough

  seen = {}

  def recording_moments(grad_fn, params, key, x_BxD, *, num_draws, draws_per_chunk):
    seen[len(seen)] = np.asarray(jax.random.key_data(key))
    ones = jax.tree.map(jnp.ones_like, params)
    return ones, ones

  monkeypatch.setattr(gs, "gradient_moments", recording_moments)
  model, params, x, _ = gs.gaussian_toy(jax.random.key(0), dim=3, num_points=4)
  ks, estimators = (1, 4, 16), ("reparam", "dreg")
  gs.sweep(params, key, x, model=model, ks=ks, estimators=estimators, num_draws=16,
           log=lambda line: None)
  keys = dict(zip([(e, k) for e in estimators for k in ks], seen.values()))
  assert len(keys) == len(ks) * len(estimators)
  for k in ks:
    np.testing.assert_array_equal(keys["reparam", k], keys["dreg", k])
  for i, k1 in enumerate(ks):
    for k2 in ks[i + 1:]:
      assert not np.array_equal(keys["dreg", k1], keys["dreg", k2]), (k1, k2)


@pytest.mark.slow
def test_sweep_estimators_at_one_k_have_equal_decoder_gradients():
  """The decoder's gradient is the same function of the noise for reparam and DReG,
  so with shared noise their decoder SNRs agree exactly at each k."""
  model, params, x, _ = gs.gaussian_toy(jax.random.key(0), dim=3, num_points=4)
  snr = gs.sweep(params, jax.random.key(1), x, model=model, ks=(4,),
                 estimators=("reparam", "dreg"), num_draws=16, log=lambda line: None)
  np.testing.assert_allclose(snr["reparam", 4]["decoder"]["mean"],
                             snr["dreg", 4]["decoder"]["mean"], rtol=1e-5)
  assert snr["reparam", 4]["encoder"]["mean"] != snr["dreg", 4]["encoder"]["mean"]
