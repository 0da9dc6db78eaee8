# %% [markdown]
# # Variance of attention outputs at initialisation
#
# Claims checked (docs/claims.md): **S1** (ReLUFormer, arXiv 2302.06461: softmax
# output variance tends to $e^{\sigma^2}/n$, plain ReLU's is $n \sigma^2 / 2$,
# ReLU divided by $\sqrt{n/2}$ stays $\Theta(1)$), the **scaling rules** (sigmoid
# with bias $-\log n$ has row sum tending to $e^{\sigma^2/2}$, $n/2$ with bias 0,
# Ramapuram et al. arXiv 2409.04431; ReLU divided by $n$ has variance
# $\sigma^2/(2n)$, Wortsman et al. arXiv 2309.08586) and **S2 at
# initialisation** (a LayerNorm after the weighted sum makes all of them
# identically distributed).
#
# Setting: logits $s_j \sim \mathcal{N}(0, \sigma^2)$ i.i.d., values
# $v_j \sim \mathcal{N}(0, 1)$ independent of them, $n$ keys. To feed exactly
# these logits to the project's own attention functions we use head dimension 1
# with $q = \sigma$ and $k_j \sim \mathcal{N}(0, 1)$: the default scale
# $1/\sqrt{1}$ gives $s_j = \sigma k_j$.

# %%
import dataclasses
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import scipy.stats
import sympy as sp
import sympy.stats as ss
import torch

from theory import _mc
from experiments import attention

torch.set_grad_enabled(False)
SIGMA = 1.0
SAMPLES = _mc.size(full=10_000, fast=2_000)
generator = torch.Generator().manual_seed(0)


def logits_qk(n: int, samples: int, sigma: float = SIGMA):
    """q = sigma, k ~ N(0, 1) with head dim 1, so the variants see s_j = sigma k_j."""
    q = torch.full((samples, 1, 1, 1), sigma, dtype=torch.float64)
    k = torch.randn(samples, 1, n, 1, generator=generator, dtype=torch.float64)
    v = torch.randn(samples, 1, n, 1, generator=generator, dtype=torch.float64)
    return q, k, v


def outputs(name: str, n: int, samples: int = SAMPLES, sigma: float = SIGMA, **params):
    q, k, v = logits_qk(n, samples, sigma)
    weights = attention.get(name).weights(q, k, causal=False, **params)  # (S, 1, 1, n)
    return weights, (weights @ v).flatten()


# %% [markdown]
# ## The logit variance (exact)
#
# For $q, k$ with i.i.d. entries of variances $\sigma_q^2, \sigma_k^2$,
#
# $$\operatorname{Var}(q \cdot k) = d \, \sigma_q^2 \sigma_k^2:$$
#
# the products are independent with mean 0 and variance $\sigma_q^2 \sigma_k^2$.
# The $1/\sqrt{d}$ scale removes $d$.

# %%
sq, sk = sp.symbols("sigma_q sigma_k", positive=True)
d = sp.symbols("d", positive=True, integer=True)
product_variance = sp.simplify(ss.variance(ss.Normal("q", 0, sq) * ss.Normal("k", 0, sk)))
logit_variance = d * product_variance
_mc.show("Var(q_i k_i)", product_variance, tex=r"\operatorname{Var}(q_i k_i)")
_mc.show("Var(q.k)", logit_variance, tex=r"\operatorname{Var}(q \cdot k)")
_mc.show("Var(q.k / sqrt d)", sp.simplify(logit_variance / d), tex=r"\operatorname{Var}(q \cdot k / \sqrt{d})")
_mc.check(sp.simplify(product_variance - sq**2 * sk**2) == 0, "Var(q_i k_i) = sigma_q^2 sigma_k^2 (sympy)")

# Monte Carlo through the project's softmax scale: q.k / sqrt(d) for d = 64 has variance 1.
qd, kd = torch.randn(2, SAMPLES, 64, generator=generator, dtype=torch.float64)
logit_variance_64 = _mc.check_mean(((qd * kd).sum(-1) / 8.0) ** 2, 1.0, "Var(q.k / sqrt d), d=64")

# %% [markdown]
# ## Plain ReLU: $\operatorname{Var} = n \sigma^2 / 2$ (exact)
#
# $$\operatorname{Var}\Big(\sum_j \operatorname{relu}(s_j) v_j\Big)
#   = n \, \mathbb{E}[\operatorname{relu}(s)^2] \, \mathbb{E}[v^2]$$
#
# (cross terms vanish since $\mathbb{E} v = 0$), and
# $\mathbb{E}[\operatorname{relu}(s)^2] = \sigma^2 / 2$ by symmetry of $s$.
# Divided by $\sqrt{n/2}$ (ReLUFormer, $\gamma = 1$) it is $\sigma^2$, whatever $n$;
# divided by $n$ (relu_len, the next section) it is $\sigma^2 / (2n)$.

# %%
s, sigma = sp.symbols("s sigma", positive=True)
density = sp.exp(-s**2 / (2 * sigma**2)) / (sigma * sp.sqrt(2 * sp.pi))
relu_second_moment = sp.simplify(sp.integrate(s**2 * density, (s, 0, sp.oo)))
_mc.show("E[relu(s)^2]", relu_second_moment, tex=r"\mathbb{E}[\operatorname{relu}(s)^2]")
_mc.check(sp.simplify(relu_second_moment - sigma**2 / 2) == 0, "E[relu(s)^2] = sigma^2 / 2 (sympy)")

RELU_LENGTHS = (16, 256, 1024)


def relu_variance_errors(name: str, predicted, formula: str) -> list[float]:
    """Check ``name``'s output variance against ``predicted(n)`` at every length; the relative errors."""
    errors = []
    for n in RELU_LENGTHS:
        _, out = outputs(name, n)
        variance = _mc.check_mean(out**2, predicted(n), f"{name}: Var = {formula} at n={n}")
        errors.append(_mc.relative_error(variance, predicted(n)))
    return errors


relu_errors = relu_variance_errors("relu", lambda n: n * SIGMA**2 / 2, "n sigma^2/2")
reluformer_errors = relu_variance_errors("reluformer", lambda n: SIGMA**2, "sigma^2")
_mc.record("S1", "Var(sum relu(s_j) v_j) = n sigma^2/2; /sqrt(n/2) gives sigma^2",
           f"Var(q.k/sqrt d) = {logit_variance_64:.3f} at d=64; largest relative error over n=16..1024: "
           f"{max(relu_errors):.1%} (relu, n sigma^2/2), {max(reluformer_errors):.1%} (reluformer, sigma^2)")

# %% [markdown]
# ## ReLU divided by $n$: $\operatorname{Var} = \sigma^2 / (2n)$ (exact)

# %%
relu_len_errors = relu_variance_errors("relu_len", lambda n: SIGMA**2 / (2 * n), "sigma^2/(2n)")
_mc.record("SCALE-relu_n", "ReLU / n has output variance sigma^2/(2n)",
           f"largest relative error {max(relu_len_errors):.1%} over n=16..1024")


# %% [markdown]
# ## Softmax: $\operatorname{Var} = \mathbb{E}[\sum_j p_j^2] \to e^{\sigma^2} / n$
#
# With $v$ independent of $p$, $\operatorname{Var}(\sum_j p_j v_j) = \mathbb{E}[\sum_j p_j^2]$
# exactly. For large $n$, $\sum_j p_j^2 = \sum_j X_j^2 / (\sum_j X_j)^2$ with
# $X = e^s$, and the law of large numbers gives
#
# $$n \, \mathbb{E}\Big[\sum_j p_j^2\Big] \to \frac{m_2}{m_1^2} = e^{\sigma^2},
#   \qquad m_k = \mathbb{E}[X^k] = e^{k^2 \sigma^2 / 2}.$$
#
# *Our derivation* (delta method) of the next term:
# $n \, \mathbb{E}[\sum_j p_j^2] = e^{\sigma^2} (1 + c / n + O(n^{-2}))$ with
#
# $$c = \frac{3 (m_2 - m_1^2)}{m_1^2} - \frac{2 (m_3 - m_1 m_2)}{m_1 m_2};$$
#
# the check compares with this first-order value and allows $e^{\sigma^2} c^2 / n^2$
# for the next term on top of the Monte Carlo error.

# %%
m = {k_: sp.exp(k_**2 * sigma**2 / 2) for k_ in (1, 2, 3)}
limit = sp.simplify(m[2] / m[1] ** 2)
c_term = sp.simplify(3 * (m[2] - m[1] ** 2) / m[1] ** 2 - 2 * (m[3] - m[1] * m[2]) / (m[1] * m[2]))
_mc.show("lim n E[sum p^2]", limit, tex=r"\lim_{n \to \infty} n \, \mathbb{E}\Big[\sum_j p_j^2\Big]")
_mc.show("c", c_term)
_mc.check(sp.simplify(limit - sp.exp(sigma**2)) == 0, "m2/m1^2 = e^{sigma^2} (sympy)")

c_value = float(c_term.subs(sigma, SIGMA))
softmax_rows = []  # (n, n E[sum p^2], first-order value, Var(out) / E[sum p^2])
for n in (256, 4096):
    weights, out = outputs("softmax", n)
    concentration = (weights**2).sum(-1).flatten()
    gap = _mc.check_mean(out**2 - concentration, 0.0, f"softmax: Var(out) = E[sum p^2] at n={n}")
    first_order = math.exp(SIGMA**2) * (1 + c_value / n)
    scaled = _mc.check_mean(n * concentration, first_order, f"softmax: n E[sum p^2] = e^(sigma^2)(1 + c/n) at n={n}",
                            extra=math.exp(SIGMA**2) * c_value**2 / n**2)  # allowance: the size of an O(n^-2) term
    softmax_rows.append((n, scaled, first_order, 1 + gap / float(concentration.mean())))
_mc.record("S1", "softmax output variance tends to e^{sigma^2}/n",
           "n E[sum p^2] = " + ", ".join(f"{scaled:.3f} (e(1 + c/n) {predicted:.3f}) at n={n}"
                                         for n, scaled, predicted, _ in softmax_rows)
           + "; Var(out) / E[sum p^2] = " + ", ".join(f"{ratio:.3f}" for *_, ratio in softmax_rows))

# %% [markdown]
# ## Sigmoid: row sum $\to e^{\sigma^2/2}$ with bias $-\log n$, $n/2$ with bias 0
#
# $$n \, \mathbb{E}[\operatorname{sigmoid}(s - \log n)] = \mathbb{E}\Big[\frac{n e^s}{n + e^s}\Big]
#   = e^{\sigma^2/2} - \mathbb{E}\Big[\frac{e^{2s}}{n + e^s}\Big];$$
#
# the correction is at most $e^{2 \sigma^2} / n$ (*our bound*), allowed in the check.
# With bias 0, $\mathbb{E}[\operatorname{sigmoid}(s)] = 1/2$ by symmetry, so the row
# sum is $n/2$ exactly.

# %%
sigmoid_rows = []  # (n, row sum with b = -log n, row sum / (n/2) with b = 0)
for n in (256, 4096):
    weights, _ = outputs("sigmoid", n)
    biased = _mc.check_mean(weights.sum(-1).flatten(), math.exp(SIGMA**2 / 2), f"sigmoid(-log n): row sum at n={n}",
                            extra=math.exp(2 * SIGMA**2) / n)
    weights, _ = outputs("sigmoid", n, bias=0.0)
    unbiased = _mc.check_mean(weights.sum(-1).flatten(), n / 2, f"sigmoid(b=0): row sum n/2 at n={n}")
    sigmoid_rows.append((n, biased, unbiased / (n / 2)))
_mc.record("SCALE-sigmoid", "sigmoid with b=-log n has row sum -> e^{sigma^2/2}; n/2 with b=0",
           "row sum with b=-log n " + ", ".join(f"{biased:.3f} at n={n}" for n, biased, _ in sigmoid_rows)
           + f" (e^(1/2) = {math.exp(SIGMA**2 / 2):.3f}); with b=0, row sum / (n/2) "
           + ", ".join(f"{ratio:.4f}" for *_, ratio in sigmoid_rows))

# %% [markdown]
# ## LayerNorm erases the difference (S2 at initialisation)
#
# With $v_j \sim \mathcal{N}(0, I_D)$ independent of the weights $w$,
# $\sum_j w_j v_j$ is $\mathcal{N}(0, \|w\|^2 I_D)$ given $w$, and LayerNorm
# (without affine) is invariant to the scale $\|w\|$, so
# $\operatorname{LN}(\sum_j w_j v_j)$ has the same law for every nonzero $w$:
# softmax, ReLU, anything. A two-sample Kolmogorov-Smirnov test should not
# reject equality (level 0.001) after the LayerNorm, and should reject it
# before, which shows the test has the power to see a difference.

# %%
def normed_outputs(name: str, n: int = 64, dim: int = 8, samples: int = SAMPLES):
    q, k, _ = logits_qk(n, samples)
    v = torch.randn(samples, 1, n, dim, generator=generator, dtype=torch.float64)
    z = attention.get(name).weights(q, k, causal=False) @ v  # (S, 1, 1, dim)
    keep = z.flatten(1).abs().sum(-1) > 0  # a ReLU row can be all zero; LN is undefined there
    z = z.flatten(1)[keep]
    return z[:, 0].numpy(), torch.nn.functional.layer_norm(z, (dim,))[:, 0].numpy()


raw_softmax, ln_softmax = normed_outputs("softmax")
raw_relu, ln_relu = normed_outputs("relu")
before = scipy.stats.ks_2samp(raw_softmax, raw_relu).pvalue
after = scipy.stats.ks_2samp(ln_softmax, ln_relu).pvalue
print(f"KS p-value before LN {before:.3g}, after LN {after:.3g}")
_mc.check(before < 1e-3, "without LN, softmax and ReLU outputs differ in law (KS rejects)")
_mc.check(after > 1e-3, "after LN, softmax and ReLU outputs have the same law (KS does not reject)")
_mc.record("S2", "LN(sum w_j v_j) has the same law for any weights at init", f"KS p={after:.2f} after LN, "
           f"{before:.1e} before")

# %% [markdown]
# ## Output variance against $n$, every registered variant
#
# Each variant's functional core on $q \sim \mathcal{N}(0, I)$, $k \sim \mathcal{N}(0, I)$
# (head dimension 16) and unit values. Normalised variants shrink like $1/n$ (softmax,
# linear, sparse maps), plain ReLU and sigmoid with bias 0 would grow like $n$, and the
# length-scaled rules hold it flat or shrink it on purpose. `norm_linear` and
# `inline` are shown before their output normalisation (the functional core),
# so they grow with $n$.

# %%
lengths = [16, 64, 256, 512] if not _mc.FAST else [16, 64, 256]
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for index, name in enumerate(attention.names()):
    variant = attention.get(name)
    kwargs = attention.accepted_params(variant.attend, dataclasses.asdict(attention.make_config(name)))
    values = []
    for n in lengths:
        q, k, v = (torch.randn(_mc.size(32, 8), 1, n, 16, generator=generator, dtype=torch.float64)
                   for _ in range(3))
        values.append(float(variant.attend(q, k, v, causal=False, **kwargs).var()))
    ax.plot(lengths, values, marker="os^v<>D"[index % 7], color=plt.cm.tab20(index / 20), label=name)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("keys n")
ax.set_ylabel("output variance at init")
ax.set_title("Attention output variance against n (head dim 16)", fontsize=10)
ax.legend(fontsize=6, ncol=2)
print("figure:", _mc.savefig(fig, "variance_vs_n"))
print("verdicts:", _mc.write_verdicts("variance"))
