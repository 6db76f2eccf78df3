"""vbayes: variational latent-variable models of images in pure JAX."""

__version__ = "0.1.0"
