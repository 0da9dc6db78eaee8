"""MQAR accuracy against the number of key-value pairs, for each attention variant (docs/claims.md K2, D1).

The prediction: normalised linear attention stores the pairs in a
fast-weight state of ``head_dim`` features per head, so its recall falls once
the pairs approach that feature dimension; softmax attention keeps every key
and does not have that limit (Zoology, arXiv 2312.04927, Figure 2's setting).

Every variant runs on the recall model of ``_common`` (a token shift before
attention, width 32, 2 heads: feature dimension 16) at the recipe's learning
rate, so the pairs are swept past the feature dimension while softmax still
learns.

Profiles:

- ``smoke``: a few steps on a tiny task; checks the pipeline, shows nothing.
- ``quick``: two CPU cores in minutes: softmax and linear attention (the
  pair D1 compares), length 96, vocabulary 64, 4, 12 and 24 pairs, 3 seeds,
  at most 1000 steps (runs stop at 0.95 test accuracy).
- ``full``: Zoology-like sizes for a GPU (length 256, vocabulary 256, width
  64 with 4 heads: feature dimension 16, 8 to 64 pairs, 3 seeds, 20k steps).
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, RECALL_MODEL, make_config

VARIANTS = ("softmax", "linear", "rela_g")
PROFILES = {
    "smoke": dict(seq_len=16, vocab_size=16, pairs=(1, 2), seeds=(0,), model=dict(d_model=16, num_heads=2, **MIXING),
                  train=dict(steps=6, batch_size=8, warmup_steps=2, eval_every=3), test_examples=32),
    "quick": dict(seq_len=96, vocab_size=64, pairs=(4, 12, 24), seeds=(0, 1, 2), model=RECALL_MODEL,
                  variants=("softmax", "linear"),
                  train=dict(steps=1000, batch_size=64, warmup_steps=100, eval_every=50, target_accuracy=0.95),
                  test_examples=500),
    "full": dict(seq_len=256, vocab_size=256, pairs=(8, 16, 32, 64), seeds=(0, 1, 2),
                 model=dict(d_model=64, num_heads=4, **MIXING),
                 train=dict(steps=20_000, batch_size=128, warmup_steps=500, eval_every=250), test_examples=2000),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [make_config(("mqar", dict(vocab_size=p["vocab_size"], seq_len=p["seq_len"], num_kv_pairs=pairs, filler="blank",
                              num_test_examples=p["test_examples"])),
                name, seed=seed, train=p["train"], **p["model"])
            for name in p.get("variants", VARIANTS) for pairs in p["pairs"] for seed in p["seeds"]]
