# %% [markdown]
# # Separation: one planted score, softmax against normalised linear attention
#
# Claim **D2** (Deng, Song, Zhou, arXiv 2310.11685, as summarised in
# docs/claims.md): plant one score $b = c \log n$ among $n - 1$ scores $\mathcal{N}(0, 1)$.
# Softmax puts weight
#
# $$\frac{n^c}{n^c + (n - 1) e^{1/2}}$$
#
# on it (in expectation over the other scores, to first order), which tends to 1 iff
# $c > 1$; sum-normalised linear attention gives it only about $b / n$ of the mass,
# which tends to 0. A read-out $\langle f, s \rangle$ of the attention output then
# keeps a gap of about $b$ between "planted" and "not planted" for softmax and a gap
# tending to 0 for linear attention.
#
# We use the project's `softmax` and `linear` weights on head dimension 1 with
# $q = 1$ and key $k_j = s_j$, so the softmax scores are exactly $s_j$. For the
# linear side the feature map must be non-negative for the row to be a
# distribution; we use `relu` features on scores shifted to be positive, which is
# the sum-normalised form $s_j / \sum_l s_l$ of the claim (*our choice of a
# concrete instance*).

# %%
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import sympy as sp
import torch

from theory import _mc
from experiments import attention

torch.set_grad_enabled(False)
generator = torch.Generator().manual_seed(0)
SAMPLES = _mc.size(full=4_000, fast=400)
LENGTHS = [2**p for p in range(6, 15 if not _mc.FAST else 12, 2)]


def planted_scores(n: int, c: float, samples: int = SAMPLES) -> torch.Tensor:
    scores = torch.randn(samples, n, generator=generator, dtype=torch.float64)
    scores[:, 0] = c * math.log(n)
    return scores


def softmax_weight(scores: torch.Tensor) -> torch.Tensor:
    q = torch.ones(scores.shape[0], 1, 1, 1, dtype=torch.float64)
    k = scores.view(scores.shape[0], 1, -1, 1)
    return attention.get("softmax").weights(q, k, causal=False, scale=1.0)[:, 0, 0, :]  # (S, n)


def linear_weight(scores: torch.Tensor, shift: float) -> torch.Tensor:
    q = torch.ones(scores.shape[0], 1, 1, 1, dtype=torch.float64)
    k = (scores + shift).view(scores.shape[0], 1, -1, 1)
    return attention.get("linear").weights(q, k, causal=False, feature_map="relu", eps=0.0)[:, 0, 0, :]


# %% [markdown]
# ## The planted weight (symbolic first-order form)
#
# With $\mathbb{E}[e^{s}] = e^{1/2}$ for the $n - 1$ other scores, the softmax weight on
# the planted entry is, to first order, $n^c / (n^c + (n-1) e^{1/2})$. Its limit is
# 1 for $c > 1$, $1/(1 + e^{1/2})$ at $c = 1$ and 0 for $c < 1$.

# %%
n_sym, c_sym = sp.symbols("n c", positive=True)
planted = n_sym**c_sym / (n_sym**c_sym + (n_sym - 1) * sp.exp(sp.Rational(1, 2)))
limits = {c: sp.limit(planted.subs(c_sym, c), n_sym, sp.oo) for c in (sp.Rational(1, 2), 1, 2)}
_mc.show("lim planted weight at c = 1/2, 1, 2", tuple(limits.values()),
         tex=r"\lim_{n \to \infty} \frac{n^c}{n^c + (n - 1) e^{1/2}} \text{ at } c = \tfrac12, 1, 2")
_mc.check(limits[2] == 1 and limits[sp.Rational(1, 2)] == 0, "planted weight -> 1 iff c > 1 (sympy)")

# %% [markdown]
# ## Monte Carlo against $n$
#
# The first-order formula replaces the sum of the other exponentials by its
# mean; by the law of large numbers the relative error of that sum is
# $O(\sqrt{(e - 1)/n})$ (*our bound*, from $\operatorname{Var}(e^s) = e^2 - e$), which
# is the allowance on top of the Monte Carlo error.

# %%
rows = []
first_order_gap = {"softmax": 0.0, "linear": 0.0}  # largest |Monte Carlo mean - first-order weight|
for n in LENGTHS:
    for c in (0.5, 2.0):
        scores = planted_scores(n, c)
        weight = softmax_weight(scores)[:, 0]
        predicted = float(planted.subs({n_sym: n, c_sym: c}))
        law_of_large_numbers = 3 * math.sqrt((math.e**2 - math.e) / (n - 1)) / math.exp(0.5)
        mean = _mc.check_mean(weight, predicted, f"softmax planted weight, n={n}, c={c}",
                              extra=predicted * (1 - predicted) * law_of_large_numbers)
        first_order_gap["softmax"] = max(first_order_gap["softmax"], abs(mean - predicted))
        shift = 6.0  # scores + 6 > 0 except with probability ~1e-9 per score
        lin = linear_weight(scores, shift)[:, 0]
        rows.append((n, c, float(weight.mean()), float(lin.mean())))
        # linear: planted mass (b + shift) / (b + shift + (n - 1) shift) to first order
        b = c * math.log(n)
        predicted = (b + shift) / (b + shift + (n - 1) * shift)
        mean = _mc.check_mean(lin, predicted, f"linear planted weight, n={n}, c={c}",
                              extra=(b + shift) / ((n - 1) * shift) * 3 / math.sqrt(n - 1))
        first_order_gap["linear"] = max(first_order_gap["linear"], abs(mean - predicted))

big = [r for r in rows if r[1] == 2.0]
_mc.check(big[-1][2] > 0.99 and big[-1][3] < 0.01,
          f"at n={big[-1][0]}, c=2: softmax planted weight {big[-1][2]:.4f} -> 1, linear {big[-1][3]:.5f} -> 0")

# %% [markdown]
# ## The read-out gap
#
# Attend with values equal to the scores ($v_j = s_j$): the output is
# $\langle p, s \rangle$. With the planted entry ($c = 2$) softmax returns about $b$,
# without it about the softmax mean of Gaussians ($\sim \sqrt{2 \log n}$ at most); linear
# attention returns nearly the same number in both cases. The gap is the
# separating statistic.

# %%
gaps = []
for n in LENGTHS:
    with_plant = planted_scores(n, 2.0)
    without = torch.randn(SAMPLES, n, generator=generator, dtype=torch.float64)
    soft_gap = float((softmax_weight(with_plant) * with_plant).sum(-1).mean()
                     - (softmax_weight(without) * without).sum(-1).mean())
    lin_gap = float((linear_weight(with_plant, 6.0) * with_plant).sum(-1).mean()
                    - (linear_weight(without, 6.0) * without).sum(-1).mean())
    gaps.append((n, 2 * math.log(n), soft_gap, lin_gap))
    print(f"n={n:6d} b={2 * math.log(n):6.2f} softmax gap {soft_gap:7.3f} linear gap {lin_gap:8.5f}")
_mc.check(all(g[2] > 0.5 * g[1] for g in gaps), "softmax gap stays of the order of b")
_mc.check(gaps[-1][3] < gaps[0][3] / 4 and gaps[-1][3] < 0.05, "linear gap shrinks towards 0 with n")
_mc.record("D2", "planted score c log n: softmax weight -> 1 (c>1), linear -> 0; gap ~b vs -> 0",
           f"limits {', '.join(str(v) for v in limits.values())} at c = 1/2, 1, 2; at n={big[-1][0]}, c=2 planted "
           f"weight {big[-1][2]:.4f} (softmax), {big[-1][3]:.5f} (linear), largest gap from the first-order weight "
           f"{first_order_gap['softmax']:.1e}, {first_order_gap['linear']:.1e}; smallest softmax gap / b "
           f"{min(g[2] / g[1] for g in gaps):.2f}; n={gaps[-1][0]}: softmax gap {gaps[-1][2]:.2f} "
           f"(b={gaps[-1][1]:.2f}), linear gap {gaps[-1][3]:.4f} (from {gaps[0][3]:.4f} at n={gaps[0][0]})")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
axes[0].plot([r[0] for r in big], [r[2] for r in big], "o-", label="softmax")
axes[0].plot([r[0] for r in big], [r[3] for r in big], "s-", label="linear (relu, sum-normalised)")
axes[0].set(xscale="log", xlabel="n", ylabel="weight on planted score (c=2)")
axes[0].legend(fontsize=8)
axes[1].plot([g[0] for g in gaps], [g[1] for g in gaps], "k--", label="b = 2 log n")
axes[1].plot([g[0] for g in gaps], [g[2] for g in gaps], "o-", label="softmax gap")
axes[1].plot([g[0] for g in gaps], [g[3] for g in gaps], "s-", label="linear gap")
axes[1].set(xscale="log", xlabel="n", ylabel="read-out gap <p, s>")
axes[1].legend(fontsize=8)
fig.suptitle("D2: one planted score among n", fontsize=10)
print("figure:", _mc.savefig(fig, "separation"))
print("verdicts:", _mc.write_verdicts("separation"))
