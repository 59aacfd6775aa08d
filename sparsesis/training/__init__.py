"""Every trainer, the one adversarial loop, and the recipes that rebuild the shipped models."""
