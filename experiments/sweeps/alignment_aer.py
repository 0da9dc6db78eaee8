"""Alignment error rate of cross-attention on the seq2seq alignment task (ReLA R7; quality, R3).

ReLA-g against softmax, sparsemax and 1.5-entmax, for two deterministic
reorderings (reversal; swapping every adjacent pair). The task is made hard
enough that no variant aligns perfectly: 12 source words from 13 content
tokens, so most sentences repeat a word and the gold link of a repeated word
is one of several positions holding the same token (content alone cannot
tell them apart; position must), and a quarter of the source words yield two
target words (one-to-many links). A quarter of the source vocabulary is
preceded in the target by an unaligned particle (a target word with no gold
link, as an article has none in many gold alignments): the one place where a
head that can switch off (ReLA's null attention) can do better than one that
must link every row. AER counts every target word, with sure and possible
gold links as ReLA's metric does: a particle's link to the word it precedes
is possible (it neither counts against a head nor is required), any other
link from it is false, and a null row there costs nothing. Runs train for
the whole budget. AER is taken per head; each layer's best head is reported,
as in ReLA.
"""

from __future__ import annotations

from experiments.sweeps._common import make_config

VARIANTS = ("rela_g", "softmax", "sparsemax", "entmax15")
REORDERINGS = {"reversal": {}, "local_swaps": {"swap_prob": 1.0}}
PROFILES = {
    "smoke": dict(source_len=4, vocab=24, seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2)),
    "quick": dict(source_len=12, vocab=16, seeds=(0, 1, 2), train=dict(steps=400, warmup_steps=50, eval_every=100),
                  model=dict(d_model=32, num_heads=2)),
    "full": dict(source_len=24, vocab=24, seeds=(0, 1, 2), train=dict(steps=3000, warmup_steps=200, eval_every=200),
                 model=dict(d_model=128, num_heads=4)),
}


def configs(profile: str):
    p = PROFILES[profile]
    return [make_config(("alignment", dict(vocab_size=p["vocab"], source_len=p["source_len"], reordering=order,
                                   fertility_prob=0.25, particle_fraction=0.25, possible_links=True,
                                   num_test_examples=500,
                                   **extra)),
                name, seed=seed, train={**p["train"], "target_accuracy": 0.0}, **p["model"])
            for name in VARIANTS for order, extra in REORDERINGS.items() for seed in p["seeds"]]
