"""Metrics (FD-EffNetL0, KID, mIoU, nearest neighbours), the evaluation commands, the README's figures and the remaking of results/."""
