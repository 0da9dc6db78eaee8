"""MQAR accuracy against width, feature dimension and decoding-state size (PAPERS.md K2; Zoology, Based).

Softmax and elu+1 linear attention at several widths with 4 heads, so the
linear feature dimension (= head_dim) grows with the width while the pairs
stay fixed. Each result records the bytes of the decoding cache after the
full sequence, measured from the real cache tensors: a KV cache for softmax
(grows with length), the fast-weight state for linear attention (does not).
"""

from __future__ import annotations

from experiments.sweeps._common import run

VARIANTS = ("softmax", "linear")
TASK = ("mqar", dict(vocab_size=32, seq_len=32, num_kv_pairs=4, filler="blank", num_test_examples=500))
PROFILES = {
    "smoke": dict(widths=(8, 16), seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2)),
    "quick": dict(widths=(16, 32, 64, 128), seeds=(0,),
                  train=dict(steps=1000, lr=1e-3, warmup_steps=100, eval_every=100)),
    "full": dict(widths=(16, 32, 64, 128, 256), seeds=(0, 1, 2),
                 train=dict(steps=10_000, lr=1e-3, warmup_steps=500, eval_every=500)),
}


def configs(profile: str):
    p = PROFILES[profile]
    heads = 2 if profile == "smoke" else 4
    return [run(TASK, name, seed=seed, train=p["train"], d_model=width, num_heads=heads)
            for name in VARIANTS for width in p["widths"] for seed in p["seeds"]]
