"""Recall against sequence length (ReLUFormer S5: ReLU attention better on long sequences).

MQAR with 4 pairs and queries placed uniformly over the rest of the sequence
(``power_a = 1``), so the distance between a key and its query grows with the
length; softmax, ReLUFormer, ReLA-g, ReLU/n and linear attention.
(Single-query AR gives one label per sequence and did not leave chance level
in 600 steps at lengths 32 and 128 on CPU, so the quick profile uses MQAR.)
"""

from __future__ import annotations

from experiments.sweeps._common import run

VARIANTS = ("softmax", "reluformer", "rela_g", "relu_len", "linear")
PROFILES = {
    "smoke": dict(lengths=(16, 32), seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2)),
    "quick": dict(lengths=(32, 64), seeds=(0,), train=dict(steps=800, lr=1e-3, warmup_steps=100, eval_every=100),
                  model=dict(d_model=64, num_heads=4)),
    "full": dict(lengths=(128, 512, 1024, 2048), seeds=(0, 1, 2),
                 train=dict(steps=10_000, lr=1e-3, warmup_steps=500, eval_every=500), model=dict(d_model=64, num_heads=4)),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [run(("mqar", dict(vocab_size=32, seq_len=length, num_kv_pairs=4, power_a=1.0, filler="blank",
                              num_test_examples=500)),
                name, seed=seed, train=p["train"], **p["model"])
            for name in VARIANTS for length in p["lengths"] for seed in p["seeds"]]
