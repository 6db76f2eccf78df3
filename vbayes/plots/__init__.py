"""Figures, by subject: images.py (reconstructions, samples, interpolations,
completions), latents.py (the latent space: grid walks, scatters, posterior samples
and densities), curves.py (numbers over training); figure.py what they share.
Each function takes numpy arrays and a path and writes a PNG."""
