"""MQAR with and without token mixing before attention: the plateau that mixing removes (a finding).

With learned absolute positions and nothing before attention, a model must
build the previous-token step that recall needs out of attention itself; on
two CPU cores it does not within the budget and sits at the guess among the
example's values (loss about ln N). A token shift, or a short causal
depthwise convolution (width 4), removes the plateau for every variant
(:class:`experiments.model.TokenMixing`). This is why the recall sweeps use
the shift.
"""

from __future__ import annotations

from experiments.sweeps._common import RECALL_MODEL, make_config

VARIANTS = ("softmax", "rela_g")
MIXINGS = ("none", "shift", "conv")
TASK = ("mqar", dict(vocab_size=64, seq_len=64, num_kv_pairs=8, filler="blank", num_test_examples=500))
QUICK = dict(seeds=(0, 1), train=dict(steps=800, warmup_steps=100, eval_every=50, target_accuracy=0.95),
             model={k: v for k, v in RECALL_MODEL.items() if k != "token_mixing"})
PROFILES = {
    "smoke": dict(seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2)),
    "quick": QUICK,
    "deep": QUICK,  # the quick sizes: the recipe's comparison, no ledger claim
    "full": dict(seeds=(0, 1, 2), train=dict(steps=5000, warmup_steps=200, eval_every=100, target_accuracy=0.99),
                 model=dict(d_model=64, num_heads=4)),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [make_config(TASK, name, seed=seed, train=p["train"], token_mixing=mixing, conv_width=4, **p["model"])
            for name in VARIANTS for mixing in MIXINGS for seed in p["seeds"]]
