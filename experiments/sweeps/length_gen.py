"""Length generalisation and attention sinks: the normalisations after the seed papers (B2, B3).

Train at one length, test at 2x, 8x and 32x (``train.test_lengths``) on MQAR
(4 pairs, queries spread uniformly) and on needle retrieval (4 needles, each
asked at the end), for softmax, SSMax, ReLU/n, ReLUFormer, stick-breaking and
linear attention. Every model here has no position embedding
(``model.positions=none``: learned positions have nothing to say past the
training length) and the token shift of the recall model, so order reaches
attention only through the causal mask, the shift and the variant itself
(stick-breaking's recency). The MQAR runs also train off-by-one softmax,
softpick and ReLA-g: with softmax they are the four whose trained heads the
sink claim (B3) compares, from the attention statistics at the training
length (share of mass on the first token per head, all-zero rows). The
quick profile trains only the variants a claim reads (B2: softmax, SSMax,
stick-breaking on MQAR, softmax and SSMax on needle, where stick-breaking
does not learn within the quick budget and so would decide nothing; B3: the
four above), three seeds each; the full profile trains every variant. The
filler is blank: with random filler, softmax does not learn MQAR without
positions within the quick budget.
"""

from __future__ import annotations

from experiments.sweeps._common import MIXING, make_config

VARIANTS = ("softmax", "ssmax", "relu_len", "reluformer", "stick_breaking", "linear")
SINK_VARIANTS = ("softmax1", "softpick", "rela_g")  # with softmax: B3
FACTORS = (2, 8, 32)
CLAIMANTS = ("softmax", "ssmax", "stick_breaking")  # the variants B2 reads
NOPE = dict(positions="none", **MIXING)
PROFILES = {
    "smoke": dict(length=8, seeds=(0,), train=dict(steps=4, batch_size=8, warmup_steps=1, eval_every=2),
                  model=dict(d_model=16, num_heads=2, **NOPE), test_examples=50),
    "quick": dict(length=32, seeds=(0, 1, 2), train=dict(steps=800, warmup_steps=50, eval_every=100),
                  model=dict(d_model=32, num_heads=2, **NOPE), test_examples=200, variants=CLAIMANTS,
                  needle_variants=("softmax", "ssmax")),
    "full": dict(length=64, seeds=(0, 1, 2), train=dict(steps=4000, warmup_steps=200, eval_every=250),
                 model=dict(d_model=64, num_heads=4, **NOPE), test_examples=1000),
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
    out = []
    for task_name, task in tasks(profile).items():
        names = (p.get("variants", VARIANTS) + SINK_VARIANTS if task_name == "mqar"
                 else p.get("needle_variants", p.get("variants", VARIANTS)))
        out += [make_config(task, name, seed=seed, train=train, **p["model"]) for name in names for seed in p["seeds"]]
    return out
