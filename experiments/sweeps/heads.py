"""Attention statistics of trained models: sparsity, null rows, head diversity (ReLA R1, R5, R6).

ReLA-g against softmax, sparsemax and 1.5-entmax on MQAR (8 pairs, length
64) with the recall model's token shift and 4 heads, so diversity is taken
across 4 heads. Runs train to 0.99 test accuracy (or the step budget); the
final metrics hold the sparsity rate, null-row rate, row entropy,
Jensen-Shannon diversity across heads and top-mass share per layer and head.
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, make_config

VARIANTS = ("rela_g", "softmax", "sparsemax", "entmax15")
TASK = ("mqar", dict(vocab_size=64, seq_len=64, num_kv_pairs=8, filler="blank", num_test_examples=500))
QUICK = dict(seeds=(0, 1, 2), train=dict(steps=1000, warmup_steps=100, eval_every=50, target_accuracy=0.99),
             model=dict(d_model=32, num_heads=4, **MIXING))
PROFILES = {
    "smoke": dict(seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2, **MIXING)),
    "quick": QUICK,
    "deep": QUICK,  # the quick sizes: R1, R5 and R6 read trained heads, which the quick runs have
    "full": dict(seeds=(0, 1, 2), train=dict(steps=5000, warmup_steps=200, eval_every=250),
                 model=dict(d_model=64, num_heads=4, **MIXING)),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [make_config(TASK, name, seed=seed, train=p["train"], **p["model"]) for name in VARIANTS for seed in p["seeds"]]
