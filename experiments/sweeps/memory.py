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
thousand slots on, softmax memories are also trained at the largest size
(``s6_ratio``: 2048 slots at the quick profile, so the top 0.2% is 4 slots).
"""

from __future__ import annotations

from experiments.sweeps._common import make_config

ACTIVATIONS = ("relu", "softmax", "softmax_ln")
PROFILES = {
    "smoke": dict(facts=64, vocab=32, ratios=(1, 2), s6_ratio=4, seeds=(0,), d_model=16,
                  train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2)),
    "quick": dict(facts=2048, vocab=128, ratios=(4, 32), s6_ratio=128, seeds=(0, 1, 2), d_model=16,
                  train=dict(steps=3000, lr=3e-3, warmup_steps=100, eval_every=250)),
    "full": dict(facts=8192, vocab=256, ratios=(1, 2, 4, 8, 16, 32, 64), s6_ratio=128, seeds=(0, 1, 2),
                 d_model=32,
                 train=dict(steps=20_000, lr=1e-3, warmup_steps=500, eval_every=500)),
}


def configs(profile: str):
    p = PROFILES[profile]
    task = ("memorisation", dict(vocab_size=p["vocab"], num_facts=p["facts"], key_tokens=2, seq_len=18,
                                 num_test_examples=500))
    cells = [(activation, ratio) for activation in ACTIVATIONS for ratio in p["ratios"]]
    cells += [("softmax", p["s6_ratio"])] if p["s6_ratio"] not in p["ratios"] else []
    return [make_config(task, "softmax", seed=seed, train={**p["train"], "target_accuracy": 0.0}, d_model=p["d_model"],
                num_heads=2, num_layers=1, mlp_activation=activation, mlp_ratio=ratio)
            for activation, ratio in cells for seed in p["seeds"]]
