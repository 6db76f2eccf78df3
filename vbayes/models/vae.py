"""A latent-variable model composed of parts, and the one interface estimators use.

    model = build(ModelConfig(latent_dim=50))        # or Model(...) from any parts
    params = model.init(key)
    q = model.proposal_distribution(params, x_BxD)   # q(z | x): DiagNormal [B]
    z_BxKxL = q.sample(key, k)
    log_w_BxK = model.log_weights(params, x_BxD, z_BxKxL, q)

    p(x, z) = p(z) p(x | z),   p(x | z) = likelihood(x; decoder(z)),

with q(z | x) from the proposal. Every objective and evaluator (ELBO, IWAE and its
gradient estimators, prior importance sampling, AVB, IS evaluation, quadrature,
stochastic VI) is written against `Model` alone, so a new prior, encoder,
network or likelihood is a new part, not an edit to them.

Parameters are one dict: "decoder", "encoder" (the proposal's; absent when the
prior is the proposal), "prior" (a learned prior's) and the likelihood's own
(a Gaussian's per-pixel scale under "decoder_raw_scale").
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from vbayes import distributions
from vbayes.models import hierarchical, nets
from vbayes.models.config import ModelConfig
from vbayes.models.interfaces import Likelihood, Prior, Proposal


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
  """p(z) p(x | z) and q(z | x); hashed by identity, so it can be a static jit argument."""
  data_dim: int
  latent_dim: int
  prior: Prior
  decoder: nets.Net
  likelihood: Likelihood
  proposal: Proposal | None = None  # None: the prior is the proposal
  latent_layers: tuple[int, ...] = ()  # units per stochastic layer; () for one of latent_dim

  @property
  def layers(self) -> tuple[int, ...]:
    """The units of each stochastic layer, z = [z1, z2, ...]: they sum to latent_dim."""
    return self.latent_layers or (self.latent_dim,)

  def init(self, key: jax.Array) -> dict:
    enc_key, dec_key = jax.random.split(key)
    params = {"decoder": self.decoder.init(dec_key, self.latent_dim, self.data_dim)}
    if self.proposal is not None:
      params["encoder"] = self.proposal.init(enc_key)
    prior_params = self.prior.init(jax.random.fold_in(key, 2))
    if prior_params is not None:
      params["prior"] = prior_params
    if self.likelihood.param_key is not None:
      params[self.likelihood.param_key] = self.likelihood.init(self.data_dim)
    return params

  # The generative model p(z) p(x | z).

  def prior_distribution(self, params):
    return self.prior.distribution(params)

  def log_prior(self, params, z_xL) -> jax.Array:
    """log p(z) for z [..., L]: [...]."""
    return self.prior_distribution(params).log_prob(z_xL)

  def decode(self, params, z_xL) -> jax.Array:
    """The decoder's output f(z) for z [..., L]: [..., D] (Bernoulli logits, Gaussian pre-means)."""
    return self.decoder.apply(params["decoder"], z_xL)

  def _likelihood_params(self, params):
    key = self.likelihood.param_key
    return None if key is None else params[key]

  def log_likelihood(self, params, z_L, x_D, mask_D=None) -> jax.Array:
    """log p(x | z) of one image at one z; with a 0/1 mask_D, log p(x_obs | z)."""
    return self.likelihood.log_prob(self._likelihood_params(params), self.decode(params, z_L),
                                    x_D, mask_D)

  def log_likelihood_of_samples(self, params, z_BxKxL, x_BxD) -> jax.Array:
    """log p(x_b | z_bk) for K samples of each of B images: [B, K].

    The decoder runs on the B*K samples as one flat batch, so each layer is one
    [B*K, n] x [n, m] product forward and backward (a vmap over K inside one over B
    gives batched products whose weight gradients XLA's CPU backend forms through
    transposed copies).
    """
    batch, k, latent = z_BxKxL.shape
    out_BxKxD = self.decode(params, z_BxKxL.reshape(batch * k, latent)).reshape(batch, k, -1)
    return self.likelihood.log_prob_of_samples(self._likelihood_params(params), out_BxKxD, x_BxD)

  def log_likelihood_matrix(self, params, z_GxL, x_BxD, mask_D=None) -> jax.Array:
    """log p(x_b | z_g) for every image b and latent point g: [B, G], each z_g decoded once."""
    return self.likelihood.log_prob_matrix(self._likelihood_params(params),
                                           self.decode(params, z_GxL), x_BxD, mask_D)

  def log_joint(self, params, x_D, z_L) -> jax.Array:
    """log p(x, z) = log p(x | z) + log p(z) of one image at one z."""
    return self.log_likelihood(params, z_L, x_D) + self.log_prior(params, z_L)

  def log_weights(self, params, x_BxD, z_BxKxL, q, log_lik_BxK=None,
                  log_q_BxK=None, prior=None) -> jax.Array:
    """log w_bk = log p(x_b | z_bk) + log p(z_bk) - log q(z_bk | x_b): [B, K].

    The log importance weight of every sample-based estimator: exp(log w) is unbiased
    for p(x) when z ~ q. q is the proposal, any distribution of batch shape [B] with
    `log_prob`. A caller that has log p(x | z) or log q(z | x) already (from
    `q.draw_and_log_prob`, which a flow computes on its way forward) passes it; one
    that scores many chunks of samples passes `prior`, p(z) built once
    (`prior_distribution`: the VampPrior encodes its pseudo-inputs to build it).
    """
    if log_lik_BxK is None:
      log_lik_BxK = self.log_likelihood_of_samples(params, z_BxKxL, x_BxD)
    if log_q_BxK is None:
      log_q_BxK = q.log_prob(z_BxKxL)
    prior = self.prior_distribution(params) if prior is None else prior
    return log_lik_BxK + prior.log_prob(z_BxKxL) - log_q_BxK

  def mean_image(self, params, z_xL) -> jax.Array:
    """E[x | z]: [..., D]."""
    return self.likelihood.mean(self._likelihood_params(params), self.decode(params, z_xL))

  def sample_image(self, params, key, z_L) -> jax.Array:
    """x ~ p(x | z) for one z."""
    return self.likelihood.sample(self._likelihood_params(params), key,
                                  self.decode(params, z_L))

  # The proposal q(z | x).

  @property
  def has_encoder(self) -> bool:
    return self.proposal is not None

  @property
  def has_proposal_density(self) -> bool:
    """Whether q(z | x) can be evaluated (false for an implicit encoder)."""
    return self.proposal is None or self.proposal.distribution is not None

  def proposal_distribution(self, params, x_xD):
    """q(z | x) with batch shape [...] for x [..., D]; the prior, broadcast, when the
    model has no encoder. ValueError for an implicit encoder (no density: fit one to
    its samples, e.g. evaluation's moment-matched Gaussian)."""
    if self.proposal is None:
      return self.prior_as_proposal(params, x_xD)
    if self.proposal.distribution is None:
      raise ValueError("an implicit encoder has no density; fit a proposal to its samples")
    return self.proposal.distribution(params["encoder"], x_xD)

  def prior_as_proposal(self, params, x_xD):
    """p(z) as a proposal of batch shape [...] for x [..., D], whatever the encoder."""
    return _broadcast_prior(self.prior_distribution(params), x_xD.shape[:-1], self.latent_dim)

  def sample_proposal(self, params, key, x_D, k: int) -> jax.Array:
    """k draws z ~ q(z | x) for one image: [k, L] (from the prior without an encoder)."""
    if self.proposal is None:
      return self.prior_distribution(params).sample(key, k)
    return self.proposal.sample(params["encoder"], key, x_D, k)


def _broadcast_prior(prior, batch_shape, latent_dim):
  """The prior as a per-image proposal of batch shape `batch_shape`.

  N(0, I) becomes DiagNormal(0, 0) (the same draws: 0 + 1 * eps), for which
  every estimator's reparameterized path already works; other priors keep their
  own sample and log_prob, broadcast over the images.
  """
  if isinstance(prior, distributions.StdNormal):
    zeros = jnp.zeros((*batch_shape, latent_dim), jnp.float32)
    return distributions.DiagNormal(zeros, zeros)
  return distributions.Broadcast(prior, tuple(batch_shape))


@functools.cache
def build(config: ModelConfig) -> Model:
  """The model `config` describes, each part built by its own Config: the networks, the
  likelihood on the decoder's output, the proposal on the encoder network and the prior
  (which may be made of the proposal). Under a prior of several stochastic layers the
  decoder reads z1 alone. Cached: one config, one Model (one jit trace)."""
  encoder_net, decoder_net = config.network.build(config)
  layers = config.latent_layers
  if len(layers) > 1:
    decoder_net = hierarchical.reading_first(decoder_net, layers[0])
  proposal = config.proposal.build(config, encoder_net)
  return Model(data_dim=config.data_dim, latent_dim=sum(layers),
               prior=config.prior.build(config, proposal), decoder=decoder_net,
               likelihood=config.likelihood.build(config), proposal=proposal,
               latent_layers=layers)


def as_model(model: "Model | ModelConfig") -> Model:
  """A Model as is; a ModelConfig as the model it describes (`build`)."""
  return model if isinstance(model, Model) else build(model)
