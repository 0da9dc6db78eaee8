# %% [markdown]
# # Attention fading, and what SSMax changes
#
# Claim **B1** (Nakanishi 2025, arXiv 2501.19399): give one key a logit that
# leads every other by a fixed margin $\delta$. Softmax's weight on it tends to
# 0 as the number of keys $n$ grows ("attention fading"): with the others all
# at the leader minus $\delta$,
#
# $$p(n) = \frac{e^\delta}{e^\delta + n - 1}.$$
#
# SSMax multiplies the logits by $s \log n$, which turns $e^\delta$ into $n^{s \delta}$:
#
# $$p(n) = \frac{n^{s \delta}}{n^{s \delta} + n - 1},$$
#
# which stays bounded away from 0 exactly when $s \delta \ge 1$ (it tends to 1
# above, to 1/2 at equality, to 0 below). ReLU/$n$ and sigmoid with $b = -\log n$
# are there for comparison: both fade like $1/n$.
#
# The others at leader $- \delta$ are the worst case: any rest at least $\delta$
# below the leader gives the leader at least this weight, so the formulas are
# lower bounds, which the Monte Carlo below checks on random rests.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

from theory import _mc
from experiments import attention

torch.set_default_dtype(torch.float64)
generator = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Limits (symbolic)

# %%
n = sp.symbols("n", positive=True)
delta = sp.symbols("delta", positive=True)
softmax_p = sp.exp(delta) / (sp.exp(delta) + n - 1)
softmax_limit = sp.limit(softmax_p, n, sp.oo)
_mc.show("lim softmax p(n)", softmax_limit, tex=r"\lim_{n \to \infty} \frac{e^\delta}{e^\delta + n - 1}")
_mc.check(softmax_limit == 0, "softmax: e^delta / (e^delta + n - 1) -> 0 as n -> oo (sympy)")

expected_limits = {sp.Rational(1, 2): 0, sp.Integer(1): sp.Rational(1, 2), sp.Rational(3, 2): 1, sp.Integer(2): 1}
found = {a: sp.limit(n**a / (n**a + n - 1), n, sp.oo) for a in expected_limits}
_mc.show("lim n^a / (n^a + n - 1) at a = s delta = 1/2, 1, 3/2, 2", tuple(found.values()),
         tex=r"\lim_{n \to \infty} \frac{n^a}{n^a + n - 1} \text{ at } a = s \delta = \tfrac12, 1, \tfrac32, 2")
_mc.check(found == expected_limits,
          f"SSMax: n^a / (n^a + n - 1) with a = s delta tends to {found} (0 below a = 1, 1/2 at 1, 1 above) (sympy)")
relu_p, sigmoid_p = delta / n, 1 / (1 + sp.exp(-(delta - sp.log(n))))
fading_limits = [sp.limit(relu_p, n, sp.oo), sp.limit(sigmoid_p, n, sp.oo), sp.limit(sigmoid_p * n, n, sp.oo)]
_mc.show("lim (delta/n, sigmoid(delta - log n), n sigmoid(delta - log n))", tuple(fading_limits),
         tex=r"\lim_{n \to \infty} \big(\delta / n, \; \sigma(\delta - \log n), \; n \, \sigma(\delta - \log n)\big)")
_mc.check(fading_limits == [0, 0, sp.exp(delta)],
          "ReLU/n: delta/n -> 0; sigmoid(delta - log n) -> 0, and n sigmoid(delta - log n) -> e^delta (sympy)")
_mc.record("B1", "softmax fades; SSMax keeps the leader's weight iff s delta >= 1; ReLU/n and sigmoid fade like 1/n",
           f"limits {softmax_limit} (softmax), "
           + ", ".join(f"{limit} at s delta = {a}" for a, limit in found.items())
           + f" (SSMax), {fading_limits[0]} (ReLU/n), {fading_limits[1]} (sigmoid; n x sigmoid -> {fading_limits[2]})")

# %% [markdown]
# ## Through the registry: the leader's weight against n
#
# One query ($q = 1$, head dimension 1, scale 1), so the keys are the logits.
# The worst case puts every other key at leader $- \delta$; random rests are
# drawn below that, $-\delta - \operatorname{Exp}(1)$.

# %%
DELTA = 2.0
LENGTHS = [2**e for e in range(2, 14 if not _mc.FAST else 11)]
VARIANTS = {  # label -> (registry name, parameters)
    "softmax": ("softmax", dict(scale=1.0)),
    "SSMax s = 1/(2 delta)": ("ssmax", dict(scale=1.0, s=0.5 / DELTA)),
    "SSMax s = 1/delta": ("ssmax", dict(scale=1.0, s=1.0 / DELTA)),
    "SSMax s = 2/delta": ("ssmax", dict(scale=1.0, s=2.0 / DELTA)),
    "ReLU / n": ("relu_len", dict(scale=1.0)),
    "sigmoid, b = -log n": ("sigmoid", dict(scale=1.0)),
}


def leader_weight(name: str, params: dict, rest: torch.Tensor) -> torch.Tensor:
    """Weight on key 0 (logit DELTA) of rows whose other logits are ``rest`` ``(rows, n - 1)``."""
    keys = torch.cat([torch.full((rest.shape[0], 1), DELTA), rest], dim=1)  # (rows, n)
    q = torch.ones(1, rest.shape[0], 1, 1)  # one head per row
    return attention.get(name).weights(q, keys.view(1, rest.shape[0], -1, 1), causal=False, **params)[0, :, 0, 0]


def formula(label: str, count: int) -> float:
    c = {"SSMax s = 1/(2 delta)": 0.5 / DELTA, "SSMax s = 1/delta": 1.0 / DELTA,
         "SSMax s = 2/delta": 2.0 / DELTA}.get(label)
    if label == "softmax":
        return np.exp(DELTA) / (np.exp(DELTA) + count - 1)
    if c is not None:
        return count ** (c * DELTA) / (count ** (c * DELTA) + count - 1)
    if label == "ReLU / n":
        return DELTA / count
    return 1 / (1 + np.exp(-(DELTA - np.log(count))))


worst, random_min = {label: [] for label in VARIANTS}, {label: [] for label in VARIANTS}
formula_gap, random_margin = 0.0, float("inf")  # largest |weight - formula|; smallest random-rest weight - worst
rows = _mc.size(200, 40)
for count in LENGTHS:
    for label, (name, params) in VARIANTS.items():
        at_worst = float(leader_weight(name, params, torch.zeros(1, count - 1))[0])
        worst[label].append(at_worst)
        formula_gap = max(formula_gap, abs(at_worst - formula(label, count)))
        _mc.check(abs(at_worst - formula(label, count)) < 1e-12,
                  f"{label}, n={count}: leader weight {at_worst:.6g} = formula {formula(label, count):.6g}")
        if name in ("softmax", "ssmax"):  # normalised: a rest further below can only raise the leader's share
            rest = -torch.empty(rows, count - 1).exponential_(generator=generator)
            random_min[label].append(float(leader_weight(name, params, rest).min()))
            random_margin = min(random_margin, random_min[label][-1] - at_worst)
            _mc.check(random_min[label][-1] >= at_worst - 1e-12,
                      f"{label}, n={count}: every one of {rows} random rests gives the leader at least the "
                      f"worst case ({random_min[label][-1]:.4f} >= {at_worst:.4f})")

big = LENGTHS[-1]
_mc.check(worst["softmax"][-1] < 0.01 and worst["ReLU / n"][-1] < 0.01 and worst["sigmoid, b = -log n"][-1] < 0.01,
          f"at n={big} softmax, ReLU/n and sigmoid give the leader < 0.01 "
          f"({worst['softmax'][-1]:.4f}, {worst['ReLU / n'][-1]:.4f}, {worst['sigmoid, b = -log n'][-1]:.4f})")
_mc.check(min(worst["SSMax s = 1/delta"]) >= 0.5 and min(worst["SSMax s = 2/delta"]) >= 0.5,
          f"SSMax with s delta >= 1 keeps the leader's weight >= 1/2 at every n "
          f"(min {min(worst['SSMax s = 1/delta']):.4f}, {min(worst['SSMax s = 2/delta']):.4f})")
_mc.check(np.all(np.diff(worst["SSMax s = 1/(2 delta)"]) < 0) and worst["SSMax s = 1/(2 delta)"][-1] < 0.05,
          f"SSMax with s delta = 1/2 fades (to {worst['SSMax s = 1/(2 delta)'][-1]:.4f} at n={big})")
_mc.record("B1", "the registry's softmax, SSMax, ReLU/n and sigmoid give the leader the formulas' weights",
           f"weights = formulas within {formula_gap:.0e}, random rests at least the worst case "
           f"(margin {random_margin:+.0e}); n={big}, delta={DELTA:g}: softmax {worst['softmax'][-1]:.4f}, "
           f"SSMax (s delta = 1/2, 1, 2) "
           f"{worst['SSMax s = 1/(2 delta)'][-1]:.3f} / {worst['SSMax s = 1/delta'][-1]:.3f} / "
           f"{worst['SSMax s = 2/delta'][-1]:.3f}, ReLU/n {worst['ReLU / n'][-1]:.4f}, "
           f"sigmoid {worst['sigmoid, b = -log n'][-1]:.4f}")

# %%
fig, ax = plt.subplots(figsize=(5.2, 3.6))
for label, values in worst.items():
    ax.plot(LENGTHS, values, "o-", markersize=3, label=label)
ax.set(xscale="log", yscale="log", xlabel="keys n", ylabel="weight on the leading key",
       title=f"B1: attention fading, leader {DELTA:g} above every other logit")
ax.axhline(0.5, color="gray", ls=":", lw=1)
ax.legend(fontsize=7)
print("figure:", _mc.savefig(fig, "fading"))
print("verdicts:", _mc.write_verdicts("fading"))
