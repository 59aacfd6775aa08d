"""GAN baselines (SPADE, OASIS, SEAN) trained on the same sparse layouts as the diffusion model.

They share the data, masking and batch code with the diffusion model; nothing in the diffusion path imports
them. Each method (``SpadeMethod``, ``OasisMethod``, ``SeanMethod``: a generator, a discriminator and their
losses) plugs into the one training loop in ``sparsesis.training.train_gan``; ``sparsesis.baselines.models``
rebuilds a trained generator from its model folder and ``sparsesis.baselines.generator`` serves it behind the
``Generator`` interface (``sparsesis.interface``), as ``sparsesis.loader.load`` returns it.
"""
