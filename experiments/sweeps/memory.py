"""The FFN as a key-value memory: memorisation against the number of slots (ReLUFormer S2, S3, S6).

A one-layer model must store a fixed table of facts whose keys are pairs of
tokens, so the value is a joint function of two tokens that the embeddings
cannot store on their own (with one-token keys the embedding-unembedding path
memorises any table, even with no MLP at width 8, so the MLP would not
matter). Width 16 keeps the rest of the model small.
The MLP's activation is relu, softmax (normalised over the slots), or
softmax followed by a LayerNorm; the hidden size (slots) is swept. Every run
trains for the whole budget (no early stop), so accuracies compare at equal
steps. Each run also records the share of activation mass in the top 0.2% of
slots (S6), over every position and over the positions that query the
memory; since 0.2% of the slots is a whole number of slots only from about a
thousand slots on, softmax memories are also trained at that size on their
own (``s6_arms``: width, slot ratio and weight decay of each).

Profiles:

- ``quick``: 2048 facts; 64 and 512 slots, where every memory either stores
  about half the table or all of it; softmax at 2048 slots for S6, at the
  recipe's weight decay 0.1.
- ``deep``: the quick table (2048 facts) with fewer slots per fact, 64 and
  128 slots, so that even the largest memory stores only part of it: relu and
  softmax + LayerNorm compare below the ceiling (S2, S3b); from 256 slots on
  both store the whole table, a larger table does not fit the steps, and at
  32 slots no memory learns. S6
  beside the recipe's arm (weight decay 0.1, width 16): the paper's weight
  decay 1e-4 (the IWSLT fairseq recipe) at width 16, and a wider memory
  (width 32) at 1e-4, each with 2048 slots; the ledger reads S6 at 1e-4.
- ``full``: a GPU's sizes (8192 facts, width 32, 32 to 2048 slots; S6 at
  4096 slots, widths 32 to 128).
"""

from __future__ import annotations

from experiments.sweeps._common import make_config

ACTIVATIONS = ("relu", "softmax", "softmax_ln")
RECIPE_WEIGHT_DECAY, PAPER_WEIGHT_DECAY = 0.1, 1e-4  # AdamW's in the recipe; the IWSLT fairseq recipe's

PROFILES = {
    "smoke": dict(facts=64, vocab=32, ratios=(1, 2), seeds=(0,), d_model=16,
                  s6_arms=((16, 4, RECIPE_WEIGHT_DECAY),),
                  train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2)),
    "quick": dict(facts=2048, vocab=128, ratios=(4, 32), seeds=(0, 1, 2), d_model=16,
                  s6_arms=((16, 128, RECIPE_WEIGHT_DECAY),),
                  train=dict(steps=3000, lr=3e-3, warmup_steps=100, eval_every=250)),
    "deep": dict(facts=2048, vocab=128, ratios=(4, 8), seeds=(0, 1, 2), d_model=16,
                 s6_arms=((16, 128, RECIPE_WEIGHT_DECAY), (16, 128, PAPER_WEIGHT_DECAY),
                          (32, 64, PAPER_WEIGHT_DECAY)),
                 train=dict(steps=3000, lr=3e-3, warmup_steps=100, eval_every=500)),
    "full": dict(facts=8192, vocab=256, ratios=(1, 2, 4, 8, 16, 32, 64), seeds=(0, 1, 2), d_model=32,
                 s6_arms=((32, 128, RECIPE_WEIGHT_DECAY), (32, 128, PAPER_WEIGHT_DECAY),
                          (64, 64, PAPER_WEIGHT_DECAY), (128, 32, PAPER_WEIGHT_DECAY)),
                 train=dict(steps=20_000, lr=1e-3, warmup_steps=500, eval_every=500)),
}


def configs(profile: str):
    """Every activation at every slot ratio (width ``d_model``, the recipe's weight decay), then the softmax
    memories of ``s6_arms`` ``(width, slot ratio, weight decay)`` not already among them."""
    p = PROFILES[profile]
    task = ("memorisation", dict(vocab_size=p["vocab"], num_facts=p["facts"], key_tokens=2, seq_len=18,
                                 num_test_examples=500))
    cells = [(activation, p["d_model"], ratio, RECIPE_WEIGHT_DECAY)
             for activation in ACTIVATIONS for ratio in p["ratios"]]
    cells += [("softmax", *arm) for arm in p["s6_arms"] if ("softmax", *arm) not in cells]
    return [make_config(task, "softmax", seed=seed, d_model=width, num_heads=2, num_layers=1,
                        train={**p["train"], "target_accuracy": 0.0, "weight_decay": weight_decay},
                        mlp_activation=activation, mlp_ratio=ratio)
            for activation, width, ratio, weight_decay in cells for seed in p["seeds"]]
