"""Attention sinks and dormant heads on Bigram-Backcopy (Guo et al. B5; off-by-one softmax and softpick, B3).

Guo et al. 2024 (arXiv 2410.13835) train one- to three-layer transformers,
one head per layer, on Bigram-Backcopy (:mod:`synthetic.bigram_backcopy`):
after one of three trigger tokens the next token copies the one before the
trigger, elsewhere it follows a fixed bigram chain. Attention is needed only
at the trigger rows; at the others (the *dormant* rows) a softmax head, whose
row must sum to 1, parks its mass on the first token (a sink) while that
token's value shrinks (a drain). The sweep trains softmax, off-by-one softmax
and softpick (B3: do they remove the sink?), and ReLU attention and ReLA-g
(B5: an unnormalised row can simply be empty). Every run trains for its whole
budget (no early stop: the sink keeps growing after the accuracy has settled)
at the authors' weight decay (1e-4), without a token shift (the shift would
hand every row the previous token and leave the copy head nothing to do),
and records the sink probe of :func:`experiments.metrics.sink_statistics`.
The task's accuracy ceiling is below 1 (the bigram draws are random), so a
run learned when it is halfway from chance to that ceiling.

Profiles: ``quick`` trains one layer at length 64, three seeds, softmax,
softmax_1, softpick and relu, 300 steps; ``deep`` trains at length 128 for
600 steps and adds ReLA-g; ``full`` is the authors' length (256), width
(256) and depths 1-3, for a GPU.
"""

from __future__ import annotations

from experiments.sweeps._common import make_config

VARIANTS = ("softmax", "softmax1", "softpick", "relu", "rela_g")
QUICK_VARIANTS = ("softmax", "softmax1", "softpick", "relu")  # B5 and B3's sink part; ReLA-g is B3's null part
AUTHORS_TRAIN = dict(weight_decay=1e-4, target_accuracy=0.0)  # Guo et al.'s weight decay; the whole budget
PROFILES = {
    "smoke": dict(arms=((1, VARIANTS),), seeds=(0,), seq_len=16, d_model=16, test_examples=32,
                  train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2)),
    "quick": dict(arms=((1, QUICK_VARIANTS),), seeds=(0, 1, 2), seq_len=64, d_model=64, test_examples=200,
                  train=dict(steps=300, batch_size=64, warmup_steps=50, eval_every=100)),
    "deep": dict(arms=((1, VARIANTS),), seeds=(0, 1, 2), seq_len=128, d_model=64,
                 test_examples=500, train=dict(steps=600, batch_size=64, warmup_steps=50, eval_every=100)),
    "full": dict(arms=((1, VARIANTS), (2, VARIANTS), (3, VARIANTS)), seeds=(0, 1, 2), seq_len=256, d_model=256,
                 test_examples=1000, train=dict(steps=20_000, batch_size=512, warmup_steps=1000, eval_every=1000)),
}


def configs(profile: str):
    p = PROFILES[profile]
    task = ("bigram_backcopy", dict(seq_len=p["seq_len"], num_test_examples=p["test_examples"]))
    train = {**p["train"], **AUTHORS_TRAIN}
    return [make_config(task, name, seed=seed, train=train, d_model=p["d_model"], num_heads=1, num_layers=layers)
            for layers, names in p["arms"] for name in names for seed in p["seeds"]]
