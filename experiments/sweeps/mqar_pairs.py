"""MQAR accuracy against the number of key-value pairs (docs/claims.md K2) and against the length (D1).

Two arms, one CSV:

- The pairs arm (K2). Normalised linear attention stores the pairs in a
  fast-weight state of ``head_dim`` features per head, so its recall falls
  once the pairs approach that feature dimension; softmax attention keeps
  every key and does not have that limit (Zoology, arXiv 2312.04927, Figure
  2's setting). Every variant runs on the recall model of ``_common`` (a token
  shift before attention, width 32, 2 heads: feature dimension 16) at the
  recipe's learning rate, so the pairs are swept past the feature dimension
  while softmax still learns.
- The length arm (D1, Deng, Song, Zhou, arXiv 2310.11685). Their separation
  needs no capacity limit: sum-normalised linear attention gives a matching
  key only about ``b / n`` of a row's mass as the length ``n`` grows, where
  softmax's exponential can keep it near 1. So linear attention gets more
  features than pairs (one head of width 32: 32 features for 8 pairs), the
  queries are spread uniformly over the sequence (``power_a = 1``), and the
  length grows with the pairs fixed; every run trains the whole budget (no
  early stop), so the two compare at equal steps.

Profiles:

- ``smoke``: a few steps on a tiny task; checks the pipeline, shows nothing.
- ``quick``: the pairs arm on two CPU cores in minutes: softmax and linear
  attention, length 96, vocabulary 64, 4, 12 and 24 pairs, 3 seeds, at most
  1000 steps (runs stop at 0.95 test accuracy).
- ``deep``: the length arm only, at lengths 64 and 256 (8 pairs, one head
  of width 32, vocabulary 64, blank filler, 500 steps at batch 32). With
  filler of its own tokens (``filler_tokens``) softmax does not leave chance
  within this budget, so the CPU arm keeps blank filler; the full profile's
  arm draws filler from 4096 tokens of its own. At 512 most softmax seeds do
  not learn within this budget, so the CPU profile stops at 256; the ledger
  reads the gap at the lengths where either learned.
- ``full``: both arms at Zoology-like sizes for a GPU (pairs: length 256,
  vocabulary 256, width 64 with 4 heads, 8 to 64 pairs; length: 16 pairs,
  one head of width 64, lengths 256 to 2048).
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
    "deep": dict(pairs=(), seeds=(0, 1, 2),
                 lengths=dict(seq_lens=(64, 256), task=dict(vocab_size=64, num_kv_pairs=8, filler="blank",
                                                                  num_test_examples=500),
                              model=dict(d_model=32, num_heads=1, **MIXING),
                              train=dict(steps=500, batch_size=32, warmup_steps=100, eval_every=100,
                                         target_accuracy=0.0))),
    "full": dict(seq_len=256, vocab_size=256, pairs=(8, 16, 32, 64), seeds=(0, 1, 2),
                 model=dict(d_model=64, num_heads=4, **MIXING),
                 train=dict(steps=20_000, batch_size=128, warmup_steps=500, eval_every=250), test_examples=2000,
                 lengths=dict(seq_lens=(256, 512, 1024, 2048),
                              task=dict(vocab_size=256 + 4096, num_kv_pairs=16, filler="random", filler_tokens=4096,
                                        num_test_examples=2000),
                              model=dict(d_model=64, num_heads=1, **MIXING),
                              train=dict(steps=20_000, batch_size=64, warmup_steps=500, eval_every=500,
                                         target_accuracy=0.0))),
}
LENGTH_VARIANTS = ("softmax", "linear")  # the pair D1 compares


def _pairs_arm(p: dict):
    return [make_config(("mqar", dict(vocab_size=p["vocab_size"], seq_len=p["seq_len"], num_kv_pairs=pairs,
                                      filler="blank", num_test_examples=p["test_examples"])),
                        name, seed=seed, train=p["train"], **p["model"])
            for name in p.get("variants", VARIANTS) for pairs in p["pairs"] for seed in p["seeds"]]


def _length_arm(p: dict, seeds):
    task = dict(power_a=1.0, **p["task"])
    return [make_config(("mqar", dict(task, seq_len=length)), name, seed=seed, train=p["train"], **p["model"])
            for name in LENGTH_VARIANTS for length in p["seq_lens"] for seed in seeds]


def configs(profile: str):
    p = PROFILES[profile]
    return _pairs_arm(p) + (_length_arm(p["lengths"], p["seeds"]) if "lengths" in p else [])
