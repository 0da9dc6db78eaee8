"""Alignment error rate of cross-attention on the seq2seq alignment task (ReLA R7; quality, R3).

ReLA-g against softmax, sparsemax and 1.5-entmax, for deterministic
reorderings (identity, reversal, swapping every adjacent pair), so the
target order is learnable and the gold alignment is exact. AER is taken
per head; each layer's best head is reported, as in ReLA.
"""

from __future__ import annotations

from experiments.sweeps._common import run

VARIANTS = ("rela_g", "softmax", "sparsemax", "entmax15")
REORDERINGS = {"identity": {}, "reversal": {}, "local_swaps": {"swap_prob": 1.0}}
PROFILES = {
    "smoke": dict(source_len=4, seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2)),
    "quick": dict(source_len=8, seeds=(0,), train=dict(steps=600, lr=3e-3, warmup_steps=50, eval_every=50),
                  model=dict(d_model=64, num_heads=4)),
    "full": dict(source_len=16, seeds=(0, 1, 2), train=dict(steps=3000, lr=1e-3, warmup_steps=200, eval_every=200),
                 model=dict(d_model=128, num_heads=4)),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [run(("alignment", dict(vocab_size=24, source_len=p["source_len"], reordering=order, num_test_examples=500,
                                   **extra)), name, seed=seed, train=p["train"], **p["model"])
            for name in VARIANTS for order, extra in REORDERINGS.items() for seed in p["seeds"]]
