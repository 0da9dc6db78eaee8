"""Shared test set-up: one torch thread (two cores; oversubscription is 30-300x slower)."""

import torch

torch.set_num_threads(1)
