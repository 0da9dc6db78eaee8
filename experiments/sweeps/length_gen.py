"""Length generalisation: the normalisations after the seed papers that claim it (B2).

Train at one length, test at 2x, 8x and 32x (``train.test_lengths``) on MQAR
(4 pairs, queries spread uniformly) and on needle retrieval (4 needles, each
asked at the end), for softmax, SSMax, ReLU/n, ReLUFormer, stick-breaking and
linear attention. Every model here has no position embedding
(``model.positions=none``: learned positions have nothing to say past the
training length) and the token shift of the recall model, so order reaches
attention only through the causal mask, the shift and the variant itself
(stick-breaking's recency). The quick profile trains only the variants the
claim reads (softmax, SSMax, stick-breaking on MQAR; softmax and SSMax on
needle, where stick-breaking does not learn within the quick budget and so
would decide nothing), three seeds each; the full profile trains every
variant. The filler is blank: with random filler, softmax does not learn
MQAR without positions within the quick budget. The deep profile trains
needle alone, 3000 steps, softmax, SSMax and stick-breaking: MQAR shows no
fading to repair. (The sink claims, B3 and B5, read the ``sinks`` sweep.)
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, make_config

VARIANTS = ("softmax", "ssmax", "relu_len", "reluformer", "stick_breaking", "linear")
FACTORS = (2, 8, 32)
CLAIMANTS = ("softmax", "ssmax", "stick_breaking")  # the variants B2 reads
NOPE = dict(positions="none", **MIXING)
PROFILES = {
    "smoke": dict(length=8, seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2, **NOPE), test_examples=50,
                  variants={"mqar": VARIANTS, "needle": VARIANTS}),
    "quick": dict(length=32, seeds=(0, 1, 2), train=dict(steps=800, warmup_steps=50, eval_every=100),
                  model=dict(d_model=32, num_heads=2, **NOPE), test_examples=200,
                  variants={"mqar": CLAIMANTS, "needle": ("softmax", "ssmax")}),
    # needle only: on MQAR softmax loses nothing from 1x to 32x (no fading to repair); 3000 steps is where
    # stick-breaking, at its best rate of 1e-3, 3e-3 and 1e-2, reaches needle's learned threshold
    "deep": dict(length=32, seeds=(0, 1, 2), train=dict(steps=3000, warmup_steps=100, eval_every=250,
                                                         target_accuracy=0.0),
                 model=dict(d_model=32, num_heads=2, **NOPE), test_examples=200, variants={"needle": CLAIMANTS}),
    "full": dict(length=64, seeds=(0, 1, 2), train=dict(steps=4000, warmup_steps=200, eval_every=250),
                 model=dict(d_model=64, num_heads=4, **NOPE), test_examples=1000,
                 variants={"mqar": VARIANTS, "needle": VARIANTS}),
}


def tasks(profile: str) -> dict[str, tuple[str, dict]]:
    p = PROFILES[profile]
    common = dict(vocab_size=64, seq_len=p["length"], num_test_examples=p["test_examples"])
    return {"mqar": ("mqar", dict(num_kv_pairs=2 if profile == "smoke" else 4, power_a=1.0, filler="blank",
                                  **common)),
            "needle": ("needle", dict(num_distractors=1 if profile == "smoke" else 3,
                                      num_queries=2 if profile == "smoke" else 4, **common))}


def configs(profile: str):
    p = PROFILES[profile]
    train = {**p["train"], "test_lengths": tuple(f * p["length"] for f in FACTORS)}
    return [make_config(task, name, seed=seed, train=train, **p["model"])
            for task_name, task in tasks(profile).items() for name in p["variants"].get(task_name, ())
            for seed in p["seeds"]]
