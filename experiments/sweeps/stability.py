"""Training stability of the ReLU family over learning rates and seeds (ReLA R2; ReLUFormer S4).

Plain ReLU attention (no normalisation, no scaling) against ReLA-i, ReLA-g,
ReLUFormer (ReLU / (gamma sqrt(n/2))) and ReLUFormer with its two row
regularisers, on a small MQAR with the recall model's token shift, over a
learning-rate grid that runs from the recipe's rate to 33 times it (to a
hundred times at full), so that something fails: the question is whether plain ReLU diverges or
fails to learn where the normalised variants learn. The figure shows final
accuracy and divergence per learning rate; the CSV has each run's divergence
step and loss spikes.
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, RECALL_MODEL, make_config

VARIANTS = {
    "relu": ("relu", {}),
    "rela_i": ("rela_i", {}),
    "rela_g": ("rela_g", {}),
    "reluformer": ("reluformer", {}),
    "reluformer+reg": ("reluformer", {"norm_loss_weight": 0.1, "entropy_loss_weight": 0.1}),
}
TASK = ("mqar", dict(vocab_size=32, seq_len=32, num_kv_pairs=4, filler="blank", num_test_examples=500))
PROFILES = {
    "smoke": dict(lrs=(1e-3,), seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2, **MIXING)),
    "quick": dict(lrs=(3e-3, 1e-1), seeds=(0, 1),
                  train=dict(steps=600, warmup_steps=50, eval_every=50, target_accuracy=0.95), model=RECALL_MODEL),
    "full": dict(lrs=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1), seeds=(0, 1, 2),
                 train=dict(steps=5000, warmup_steps=200, eval_every=250), model=dict(d_model=64, num_heads=4,
                                                                                      **MIXING)),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [make_config(TASK, variant, seed=seed, train={**p["train"], "lr": lr}, **p["model"])
            for variant in VARIANTS.values() for lr in p["lrs"] for seed in p["seeds"]]
