"""Copying: length generalisation (Jelassi et al. 2024, arXiv 2402.01032).

Train on short strings, test on the training lengths and on longer ones;
accuracy by copy length for each variant, on the recall model (token shift)
at the recipe's learning rates. Learned absolute positions never see the
longer positions in training, which bounds every variant here.
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, RECALL_MODEL, make_config

VARIANTS = ("softmax", "rela_g", "linear", "relu_len")
QUICK = dict(train_len=8, test_len=12, seeds=(0, 1), train=dict(steps=500, warmup_steps=50, eval_every=100),
             model=RECALL_MODEL)
PROFILES = {
    "smoke": dict(train_len=4, test_len=6, seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2, **MIXING)),
    "quick": QUICK,
    "deep": QUICK,  # the quick sizes: no ledger claim reads this figure
    "full": dict(train_len=20, test_len=40, seeds=(0, 1, 2),
                 train=dict(steps=5000, warmup_steps=200, eval_every=250), model=dict(d_model=128, num_heads=4,
                                                                                      **MIXING)),
}


def configs(profile: str):
    p = PROFILES[profile]
    task = ("copying", dict(vocab_size=12, seq_len=2 * p["test_len"] + 3, train_min_len=1, train_max_len=p["train_len"],
                            test_min_len=1, test_max_len=p["test_len"], num_test_examples=500))
    return [make_config(task, name, seed=seed, train={**p["train"], "target_accuracy": 0.0}, **p["model"])
            for name in VARIANTS for seed in p["seeds"]]
