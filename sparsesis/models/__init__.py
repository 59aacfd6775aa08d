"""The networks (UNet, upsampler, segmenter, discriminators), the samplers and model folders."""
