"""GAN baselines trained on the same sparse layouts as the diffusion model (issue: baselines).

They share the data, masking and batch code with the diffusion model; nothing in the diffusion path
imports them. Each method is a ``GanMethod`` (generator + discriminator + losses) that plugs into the one
training loop in ``sparsesis.baselines.train``.
"""
