"""Training stability of the ReLU family (ReLA R2; ReLUFormer S4), in the authors' setting and in the recipe's.

Plain ReLU attention (no normalisation, no scaling) against ReLA-i, ReLA-g,
a plain RMSNorm on the heads (ReLA-i with gain 1 and no gate: the control
that the paper's "a specialised initialisation or a gate" implies),
ReLUFormer (ReLU / (gamma sqrt(n/2))) and ReLUFormer with its two row
regularisers at weights a decade apart, on MQAR with the recall model's
token shift.

Two settings, named in the CSV by their model columns:

- ``paper``: what the ReLA authors train with (their ``zero`` toolkit):
  post-LN (``x = LN(x + f(x))``), uniform unit-scaling initialisation with
  embeddings scaled by sqrt(d), sinusoidal positions, no gradient clipping,
  no weight decay, the Noam schedule. Here plain ReLU's output is tens to
  hundreds of times the residual stream at initialisation (its row mass
  grows with the number of keys ``n``), which is what the normalisation is
  claimed to fix; ``n`` (the sequence length) is swept so that the
  variance argument (output variance ``n sigma^2 / 2``) can bite.
- ``recipe``: the recall recipe of the other sweeps (pre-LN, GPT-2 init,
  clipping at 1), at the recipe's rate and at 33 times it. Plain ReLU's
  output starts at about 1% of the residual there, so this setting removes
  the mechanism; it is kept as a second setting because it says how the
  claim depends on it.

The figure shows final accuracy and divergence per setting, length and
learning rate; the CSV has each run's divergence step, loss spikes and the
output / residual probe at initialisation.
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, RECALL_MODEL, make_config

VARIANTS = {
    "relu": ("relu", {}),
    "rela_i": ("rela_i", {}),
    "rela_g": ("rela_g", {}),
    "rmsnorm": ("rela_i", {"gain_init": "ones"}),
    "reluformer": ("reluformer", {}),
}
REGULARISED = {f"reluformer+reg{w:g}": ("reluformer", {"norm_loss_weight": w, "entropy_loss_weight": w})
               for w in (0.01, 0.1, 1.0)}
PAPER_MODEL = dict(norm_placement="post", init="unit_scaling", positions="sinusoidal")
PAPER_TRAIN = dict(grad_clip=0.0, weight_decay=0.0, schedule="noam")


def task(length: int, vocab: int = 64) -> tuple[str, dict]:
    return ("mqar", dict(vocab_size=vocab, seq_len=length, num_kv_pairs=4, filler="blank", num_test_examples=500))


# arms: (setting, length, learning rates, variants, batch size)
QUICK = dict(arms=[("paper", 32, (3e-3,), (*VARIANTS, *REGULARISED), 32),
                   ("paper", 32, (3e-2,), ("relu", "rela_i", "rela_g", "reluformer"), 32),
                   ("paper", 128, (3e-3,), ("relu", "rela_i", "rela_g", "reluformer"), 16),
                   ("recipe", 32, (1e-1,), ("relu", "rela_i", "rela_g"), 64)],
             seeds=(0, 1, 2), train=dict(steps=800, warmup_steps=100, eval_every=100, target_accuracy=0.95),
             model=RECALL_MODEL)
PROFILES = {
    "smoke": dict(arms=[("paper", 16, (1e-3,), ("relu", "rela_i", "reluformer+reg0.1"), 8)], seeds=(0,),
                  train=dict(steps=4, warmup_steps=1, eval_every=2), model=dict(d_model=16, num_heads=2, **MIXING)),
    "quick": QUICK,
    "deep": QUICK,  # the quick sizes: R2 and S4 are decided in the authors' setting there
    "full": dict(arms=[("paper", n, (1e-3, 3e-3, 1e-2), tuple(VARIANTS), 32) for n in (32, 128, 256)]
                 + [("paper", 128, (3e-3,), tuple(REGULARISED), 32),
                    ("recipe", 32, (3e-3, 1e-1), ("relu", "rela_i", "rela_g", "reluformer"), 64)],
                 seeds=(0, 1, 2), train=dict(steps=3000, warmup_steps=400, eval_every=250),
                 model=dict(d_model=64, num_heads=4, **MIXING)),
}


def configs(profile: str):
    p = PROFILES[profile]
    out = []
    for setting, length, lrs, names, batch in p["arms"]:
        model = {**p["model"], **(PAPER_MODEL if setting == "paper" else {})}
        train = {**p["train"], "batch_size": batch, **(PAPER_TRAIN if setting == "paper" else {})}
        for name in names:
            variant = {**VARIANTS, **REGULARISED}[name]
            out += [make_config(task(length), variant, seed=seed, train={**train, "lr": lr}, **model)
                    for lr in lrs for seed in p["seeds"]]
    return out
