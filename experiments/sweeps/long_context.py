"""Recall against sequence length (ReLUFormer S5: ReLU attention better on long sequences).

MQAR with 4 pairs and queries placed uniformly over the rest of the sequence
(``power_a = 1``), so the distance between a key and its query grows with the
length; softmax and ReLUFormer on the recall model (token shift) at the
recipe's learning rates. The ledger compares them at the longest length
where either learned. The paper finds the two equal at lengths 128 and 256
and ReLU ahead from 512, so only the full profile (to 2048) can show the
claim; the quick profile trains at 128 only (at 64 both reach the target
accuracy in every seed, which decides nothing), where a tie is what the
paper predicts and the ledger says inconclusive. Single-query AR gives one
label per sequence, too little to leave chance level within a CPU budget at
these lengths, so the sweep uses MQAR.
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, RECALL_MODEL, make_config

VARIANTS = ("softmax", "reluformer")
PROFILES = {
    "smoke": dict(lengths=(16, 32), seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2, **MIXING)),
    "quick": dict(lengths=(128,), seeds=(0, 1, 2),
                  train=dict(steps=800, warmup_steps=100, eval_every=50, target_accuracy=0.95), model=RECALL_MODEL),
    "full": dict(lengths=(128, 512, 1024, 2048), seeds=(0, 1, 2),
                 train=dict(steps=10_000, warmup_steps=500, eval_every=500), model=dict(d_model=64, num_heads=4,
                                                                                        **MIXING)),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [make_config(("mqar", dict(vocab_size=64 if profile != "smoke" else 32, seq_len=length, num_kv_pairs=4,
                              power_a=1.0, filler="blank", num_test_examples=500)),
                name, seed=seed, train=p["train"], **p["model"])
            for name in VARIANTS for length in p["lengths"] for seed in p["seeds"]]
