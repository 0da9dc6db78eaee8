"""Recall against sequence length (ReLUFormer S5: ReLU attention better on long sequences).

Softmax and ReLUFormer on the recall model (token shift) at the recipe's
learning rates. The ledger compares them at the longest length of at least
512 where either learned (the paper finds the two equal at 128 and 256 and
ReLU ahead from 512).

Profiles:

- ``quick``: MQAR at length 128 only, 4 pairs, queries placed uniformly
  (``power_a = 1``), blank filler, runs stop at 0.95 test accuracy. At 128 the
  paper predicts a tie, so the ledger says inconclusive; blank filler leaves
  nothing that grows with the length to compete for attention.
- ``deep``: MQAR at length 512, 8 pairs, queries placed uniformly, with
  random filler drawn from 256 tokens of its own, disjoint from keys and
  values (``filler_tokens``): every filler token is a distinct competitor
  for attention, and more of them come with the length. Every run trains
  the whole budget (2000 steps at batch 16, no early stop), so the two
  compare at equal steps: recall forms late at this length (accuracy
  near chance for the first thousand steps, then a sharp rise), so a
  shorter budget ends before either learns. Where both end at the ceiling
  the ledger compares the steps each took to 0.95 test accuracy. The
  budget goes to 512 alone (the length from which the paper finds ReLU
  ahead; quick runs 128). ReLUFormer runs in the blockwise form (128-token
  blocks): the same sum as the materialised one, and on a CPU at length
  512 about twice as fast (it skips the blocks the causal mask hides and
  stays in cache).
- ``full``: the same task for a GPU at 128 to 2048 tokens (4096 filler
  tokens, 16 pairs, width 64 with 4 heads, 10k steps).

The deep profile uses MQAR's layout with needle-like filler rather than
needle retrieval (:mod:`synthetic.needle`, its keys asked together at the
end), whose single answer per key gives too little signal to learn at these
lengths within a CPU budget.
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, RECALL_MODEL, make_config

VARIANTS = ("softmax", "reluformer")
PROFILES = {
    "smoke": dict(lengths=(16, 32), seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2, **MIXING), task=dict(vocab_size=32, num_kv_pairs=4)),
    "quick": dict(lengths=(128,), seeds=(0, 1, 2),
                  train=dict(steps=800, warmup_steps=100, eval_every=50, target_accuracy=0.95), model=RECALL_MODEL,
                  task=dict(vocab_size=64, num_kv_pairs=4)),
    "deep": dict(lengths=(512,), seeds=(0, 1, 2),
                 train=dict(steps=2000, batch_size=16, warmup_steps=100, eval_every=100, target_accuracy=0.0),
                 model=RECALL_MODEL, task=dict(vocab_size=64 + 256, num_kv_pairs=8, filler="random",
                                               filler_tokens=256, num_test_examples=250),
                 attention=dict(reluformer=dict(form="blockwise", block_size=128))),
    "full": dict(lengths=(128, 512, 1024, 2048), seeds=(0, 1, 2),
                 train=dict(steps=10_000, batch_size=64, warmup_steps=500, eval_every=500, target_accuracy=0.0),
                 model=dict(d_model=64, num_heads=4, **MIXING),
                 task=dict(vocab_size=256 + 4096, num_kv_pairs=16, filler="random", filler_tokens=4096,
                           num_test_examples=1000)),
}


def configs(profile: str):
    p = PROFILES[profile]
    task = {"power_a": 1.0, "filler": "blank", "num_test_examples": 500, **p["task"]}
    return [make_config(("mqar", dict(task, seq_len=length)), (name, p.get("attention", {}).get(name, {})),
                        seed=seed, train=p["train"], **p["model"])
            for name in VARIANTS for length in p["lengths"] for seed in p["seeds"]]
