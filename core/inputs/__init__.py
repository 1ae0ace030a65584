"""Inputs: data sets and their splits, MNIST, sample and users' model files, the one training loop."""
