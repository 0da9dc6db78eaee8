"""Experiments on softmax, linear and ReLU attention: variants, models, training, sweeps."""
