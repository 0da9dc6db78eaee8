"""MQAR accuracy against the number of key-value pairs, for each attention variant.

The prediction (PAPERS.md, K2 and D1): a normalised linear attention stores
the pairs in a fixed-size fast-weight state (head_dim x head_dim per head),
so its recall falls once the pairs outgrow the state; softmax attention does
not have that limit (Zoology, arXiv 2312.04927, Figure 2's setting).

Profiles:

- ``smoke``: a few steps on a tiny task; checks the pipeline, shows nothing.
- ``quick``: what two CPU cores can train in minutes (sequence 32, vocabulary
  32, blank filler). Training budgets this small sit near the plateau that
  precedes recall, so read the quick figure as a budget-limited measurement.
- ``full``: Zoology-like sizes for a GPU (sequence 128, vocabulary 256,
  3 seeds, 20k steps).
"""

from __future__ import annotations

import synthetic
from experiments import attention
from experiments.model import ModelConfig
from experiments.runs import RunConfig
from experiments.train import TrainConfig

VARIANTS = ("softmax", "linear", "rela_g")
PROFILES = {
    "smoke": dict(seq_len=16, vocab_size=16, pairs=(1, 2), seeds=(0,), d_model=16, num_heads=2,
                  train=dict(steps=6, batch_size=8, warmup_steps=2, eval_every=3), test_examples=32),
    "quick": dict(seq_len=32, vocab_size=32, pairs=(1, 2, 4, 8), seeds=(0,), d_model=64, num_heads=4,
                  train=dict(steps=2000, batch_size=64, lr=1e-3, warmup_steps=100, eval_every=100),
                  test_examples=500),
    "full": dict(seq_len=128, vocab_size=256, pairs=(4, 8, 16, 32), seeds=(0, 1, 2), d_model=64, num_heads=4,
                 train=dict(steps=20_000, batch_size=128, lr=1e-3, warmup_steps=500, eval_every=500),
                 test_examples=2000),
}


def configs(profile: str) -> list[RunConfig]:
    p = PROFILES[profile]
    runs = []
    for name in VARIANTS:
        for pairs in p["pairs"]:
            for seed in p["seeds"]:
                runs.append(RunConfig(
                    task=synthetic.make_config("mqar", vocab_size=p["vocab_size"], seq_len=p["seq_len"],
                                               num_kv_pairs=pairs, filler="blank",
                                               num_test_examples=p["test_examples"]),
                    model=ModelConfig(d_model=p["d_model"], num_heads=p["num_heads"],
                                      attention=attention.make_config(name)),
                    train=TrainConfig(**p["train"], seed=seed),
                ))
    return runs
