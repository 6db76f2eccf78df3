"""Every stream of randomness, named once: stream(parent, NAME) = fold_in(parent, NAME).

    run root = jax.random.key(seed)
      INIT, TRAIN, DATA            the parameters' init, the training noise, the data order
      EVAL                         the evaluation key: the run's test evaluation, and
                                   experiments.evaluate with the same --seed
        BINARIZE                   a dynamic binarization: of image j, item(stream, j),
                                   so it is the same whichever command or batch size
        SAMPLES, PROPOSAL, KL,     importance sampling's draws; the moment-matched proposal
        POSTERIOR_MEAN             of an implicit q; a Monte Carlo KL; E_q[z] by sampling
                                   (each per batch b: item(stream, b))
        CHAINS, SIMULATE           AIS chains per batch; BDMC's simulated data
        VALIDATION                 the held-out curve (an evaluation of its own)
        FIGURES                    the images and draws of a run's figures
      STUDY_FIGURES, STUDY_COMPARISON, STUDY_CURVE
                                   a study script's own figures, its comparison of the
                                   runs' log p(x), its held-out curve
A new purpose takes a new name here; no two purposes share a stream.
"""

import jax

INIT, TRAIN, DATA, EVAL = range(4)
BINARIZE, SAMPLES, PROPOSAL, KL, POSTERIOR_MEAN, CHAINS, SIMULATE, FIGURES = range(10, 18)
VALIDATION = 1_000_003
STUDY_FIGURES, STUDY_COMPARISON, STUDY_CURVE = 1001, 1002, 1003


def stream(parent: jax.Array, name: int) -> jax.Array:
  """The key of stream `name` (a number above) of `parent`."""
  return jax.random.fold_in(parent, name)


def item(parent: jax.Array, index) -> jax.Array:
  """The key of the index-th image, batch or step of a stream."""
  return jax.random.fold_in(parent, index)


def evaluation_key(seed: int) -> jax.Array:
  """The evaluation key of the run with `seed`: stream(key(seed), EVAL)."""
  return stream(jax.random.key(seed), EVAL)
