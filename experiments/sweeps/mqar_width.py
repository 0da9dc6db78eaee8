"""MQAR accuracy against width, feature dimension and decoding-state size (docs/claims.md K2; Zoology, Based).

Softmax and elu+1 linear attention at several widths with 2 heads and the
recall model's token shift, so the linear feature dimension (= head_dim =
width / 2) grows with the width while the pairs stay fixed (8 at quick). Each result
records the bytes of the decoding cache after the full sequence, measured
from the real cache tensors: a KV cache for softmax (grows with length), the
fast-weight state for linear attention (does not).
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, make_config

VARIANTS = ("softmax", "linear")
QUICK = dict(widths=(16, 32, 64), pairs=8, heads=2, seeds=(0, 1),
             train=dict(steps=1000, warmup_steps=100, eval_every=50, target_accuracy=0.95))
PROFILES = {
    "smoke": dict(widths=(8, 16), pairs=4, heads=2, seeds=(0,),
                  train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2)),
    "quick": QUICK,
    "deep": QUICK,  # the quick sizes: K2's trained evidence
    "full": dict(widths=(16, 32, 64, 128, 256), pairs=32, heads=4, seeds=(0, 1, 2),
                 train=dict(steps=10_000, warmup_steps=500, eval_every=500)),
}


def configs(profile: str):
    p = PROFILES[profile]
    task = ("mqar", dict(vocab_size=64 if profile != "full" else 256, seq_len=64 if profile != "full" else 128,
                         num_kv_pairs=p["pairs"], filler="blank", num_test_examples=500))
    return [make_config(task, name, seed=seed, train=p["train"], d_model=width, num_heads=p["heads"], **MIXING)
            for name in VARIANTS for width in p["widths"] for seed in p["seeds"]]
