# %% [markdown]
# # Gradients of normalised attention
#
# Claim **Q1** (Qin et al. 2022, arXiv 2210.10340): for row-normalised weights
# $p_{ij} = f(s_{ij}) / \sum_k f(s_{ik})$,
#
# $$\frac{\partial p_{ij}}{\partial s_{ik}} = \frac{f'}{f}(s_{ik}) \, p_{ij} (\delta_{jk} - p_{ik}).$$
#
# For softmax ($f = \exp$, $f'/f = 1$) every entry is bounded by 1/4. For kernel-normalised
# linear attention ($f(s) = s$ on positive similarities, $f'/f = 1/s$) the
# entries grow without bound as the row's mass tends to 0. ReLA's weights are
# not normalised: $\mathrm{d} \operatorname{relu}(s) / \mathrm{d} s$ is 0 or 1 (*our remark*), bounded, but the
# output scale is not (see `variance`). The last section (B4) extends this to the
# normalisations after the seed papers: SSMax, stick-breaking and softpick.

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
# ## The Jacobian formula (symbolic, $n = 3$, any positive $f$)

# %%
s = sp.symbols("s0:3", real=True)
f = sp.Function("f", positive=True)
total = sum(f(x) for x in s)
p = [f(x) / total for x in s]
mismatches = [(j, k) for j in range(3) for k in range(3)
              if sp.simplify(sp.diff(p[j], s[k])
                             - sp.diff(f(s[k]), s[k]) / f(s[k]) * p[j] * ((1 if j == k else 0) - p[k])) != 0]
_mc.show("dp_0/ds_1", sp.simplify(sp.diff(p[0], s[1])), tex=r"\frac{\partial p_0}{\partial s_1}")
_mc.check(not mismatches, f"dp_j/ds_k = (f'/f)(s_k) p_j (delta_jk - p_k) for all j, k (sympy, n=3); "
          f"mismatches: {mismatches}")

x = sp.symbols("x", positive=True)
worst = sp.maximum(x * (1 - x), x, sp.Interval(0, 1))
_mc.show("max p(1 - p) on [0, 1]", worst, tex=r"\max_{p \in [0, 1]} p (1 - p)")
_mc.check(worst == sp.Rational(1, 4), "max p(1 - p) on [0, 1] = 1/4 (sympy), and |p_j p_k| <= 1/4")


# %% [markdown]
# ## Softmax: every Jacobian entry within 1/4 (numerically, the project's softmax)

# %%
def jacobian_wrt_scores(weights_fn, scores: torch.Tensor) -> torch.Tensor:
    """d weights / d scores for one row, scores fed as keys with q = 1, head dim 1, scale 1."""
    def row(k_flat):
        q = torch.ones(1, 1, 1, 1)
        return weights_fn(q, k_flat.view(1, 1, -1, 1)).flatten()

    return torch.autograd.functional.jacobian(row, scores)


softmax_weights = lambda q, k: attention.get("softmax").weights(q, k, causal=False, scale=1.0)  # noqa: E731
largest = 0.0
for trial in range(_mc.size(200, 40)):
    scores = 4 * torch.randn(16, generator=generator)
    largest = max(largest, float(jacobian_wrt_scores(softmax_weights, scores).abs().max()))
two = torch.tensor([0.0, 0.0])  # two equal scores: p = 1/2, the bound is attained
attained = float(jacobian_wrt_scores(softmax_weights, two).abs().max())
_mc.check(largest <= 0.25 + 1e-12 and abs(attained - 0.25) < 1e-12,
          f"softmax Jacobian entries <= 1/4 (max over random rows {largest:.4f}; 1/4 attained at p = 1/2)")
_mc.record("Q1", "softmax Jacobian entries bounded by 1/4",
           f"max {largest:.4f} over random rows; {attained:.4f} at two equal scores (p = 1/2); sympy: "
           f"{len(mismatches)} of 9 entries off the formula, max p(1 - p) = {worst}")

# %% [markdown]
# ## Linear attention: the Jacobian grows like 1 / (row mass)
#
# The project's `linear` weights with the `relu` feature map on head dimension 1
# ($q = 1$) are exactly $s_j / \sum_l s_l$ for positive keys $s_j$. Scaling all
# keys by $t$ leaves the weights unchanged and multiplies the Jacobian by $1/t$.

# %%
linear_weights = lambda q, k: attention.get("linear").weights(q, k, causal=False, feature_map="relu", eps=0.0)  # noqa: E731
base = torch.rand(16, generator=generator) + 0.1
scales = np.logspace(0, -6, 7)
norms = [float(jacobian_wrt_scores(linear_weights, t * base).abs().max()) for t in scales]
for t, norm in zip(scales, norms):
    print(f"row mass {t * float(base.sum()):9.2e}  max |dp/ds| {norm:9.3e}")
products = np.array(norms) * scales
_mc.check(np.allclose(products, products[0], rtol=1e-6), "linear: max|dp/ds| x mass is constant, so it is unbounded")
_mc.check(norms[-1] > 1e5, f"linear: max|dp/ds| = {norms[-1]:.2e} at row mass {scales[-1] * float(base.sum()):.1e}")
_mc.record("Q1", "kernel-normalised linear attention gradients unbounded as row mass -> 0",
           f"max|dp/ds| = {norms[-1]:.1e} at mass {scales[-1] * float(base.sum()):.1e}; max|dp/ds| x mass varies by "
           f"{float(np.ptp(products) / products[0]):.0e} (relative) over masses 1e0..1e-6")

# %% [markdown]
# ## ReLA: entries 0 or 1

# %%
rela_weights = lambda q, k: attention.get("rela_g").weights(q, k, causal=False)  # noqa: E731
jac = jacobian_wrt_scores(rela_weights, torch.randn(16, generator=generator))
values = set(jac.unique().tolist())
_mc.check(values <= {0.0, 1.0}, f"ReLA: d relu(s)/ds entries in {{0, 1}} (saw {sorted(values)})")
_mc.record("Q1", "ReLA's (unnormalised) weights have derivatives 0 or 1", f"entries {sorted(values)}")

# %% [markdown]
# ## Beyond the seeds (B4): SSMax, stick-breaking, softpick
#
# - **SSMax** is softmax of $c z$ with $c = s \log n$, so its Jacobian is $c$
#   times softmax's: entries within $s \log n / 4$, a bound that grows (slowly)
#   with the number of keys.
# - **Stick-breaking**, $w_j = \beta_j \prod_{k > j} (1 - \beta_k)$ with
#   $\beta = \operatorname{sigmoid}(z)$: $\partial w_j / \partial z_j = w_j (1 - \beta_j)$,
#   $\partial w_j / \partial z_k = -w_j \beta_k$ for a nearer key $k > j$, 0 for a
#   farther one; each is a product $\beta (1 - \beta)$ times factors in $[0, 1]$, so
#   within 1/4, as softmax.
# - **Softpick**, $w_j = \operatorname{relu}(a_j) / S$ with $a = e^z - 1$, $S = \sum_l |a_l|$:
#
#   $$\frac{\partial w_j}{\partial z_k}
#     = \frac{e^{z_k} \big(\delta_{jk} \mathbb{1}[a_j > 0] - w_j \operatorname{sign}(a_k)\big)}{S},$$
#
#   which grows like $1 / S$ as the row's mass $S$ tends to 0 (all logits near 0), as
#   linear attention's does; the $\varepsilon$ in the denominator caps it.

# %%
z = sp.symbols("z0:3", real=True)
c = sp.symbols("c", positive=True)
ssmax = [sp.exp(c * zj) / sum(sp.exp(c * zl) for zl in z) for zj in z]
ssmax_ok = all(sp.simplify(sp.diff(ssmax[j], z[k]) - c * ssmax[j] * ((1 if j == k else 0) - ssmax[k])) == 0
               for j in range(3) for k in range(3))
beta = [1 / (1 + sp.exp(-zj)) for zj in z]
stick = [beta[j] * sp.prod([1 - beta[k] for k in range(j + 1, 3)]) for j in range(3)]
stick_expected = {(j, k): (stick[j] * (1 - beta[j]) if k == j else -stick[j] * beta[k] if k > j else 0)
                  for j in range(3) for k in range(3)}
stick_ok = all(sp.simplify(sp.diff(stick[j], z[k]) - stick_expected[(j, k)]) == 0 for j in range(3) for k in range(3))
a = [sp.exp(zj) - 1 for zj in z]  # on the orthant a_0 > 0, a_1 > 0, a_2 < 0 (z_2 < 0)
mass = a[0] + a[1] - a[2]
pick = [a[0] / mass, a[1] / mass, sp.Integer(0)]
signs = [1, 1, -1]
pick_ok = all(sp.simplify(sp.diff(pick[j], z[k]) - sp.exp(z[k]) * ((1 if j == k and j < 2 else 0)
                                                                   - pick[j] * signs[k]) / mass) == 0
              for j in range(3) for k in range(3))
_mc.check(ssmax_ok and stick_ok and pick_ok,
          f"Jacobians (sympy, n=3): SSMax = c x softmax's ({ssmax_ok}); stick-breaking w_j(1 - beta_j), "
          f"-w_j beta_k ({stick_ok}); softpick e^(z_k)(delta_jk 1[a_j>0] - w_j sign a_k)/S ({pick_ok})")

S_HEAD = 0.7
ssmax_weights = lambda q, k: attention.get("ssmax").weights(q, k, causal=False, s=S_HEAD, scale=1.0)  # noqa: E731
stick_weights = lambda q, k: attention.get("stick_breaking").weights(q, k, causal=False, scale=1.0)  # noqa: E731
ssmax_ratios = []  # (n, largest |dw/dz| over random rows / (s log n / 4))
for count in (2, 16, 256):
    bound = S_HEAD * np.log(count) / 4
    worst_row = max(float(jacobian_wrt_scores(ssmax_weights, 3 * torch.randn(count, generator=generator)).abs().max())
                    for _ in range(_mc.size(40, 10)))
    ssmax_ratios.append((count, worst_row / bound))
    _mc.check(worst_row <= bound + 1e-12,
              f"SSMax (s={S_HEAD}), n={count}: max |dw/dz| {worst_row:.4f} <= s log n / 4 = {bound:.4f}")
at_two, bound_two = float(jacobian_wrt_scores(ssmax_weights, torch.zeros(2)).abs().max()), S_HEAD * np.log(2) / 4
_mc.check(abs(at_two - bound_two) < 1e-12, f"SSMax: two equal logits attain the bound ({at_two:.6f} = {bound_two:.6f})")
largest_stick = 0.0
for _ in range(_mc.size(200, 40)):
    largest_stick = max(largest_stick, float(jacobian_wrt_scores(
        stick_weights, 4 * torch.randn(16, generator=generator)).abs().max()))
_mc.check(largest_stick <= 0.25 + 1e-12, f"stick-breaking: max |dw/dz| over random rows {largest_stick:.4f} <= 1/4")

pick_base = torch.tensor([0.9, 0.5, -0.7, 0.3, -0.2, 0.6])
pick_scales = np.logspace(0, -5, 6)
pick_weights = lambda eps: (lambda q, k: attention.get("softpick").weights(q, k, causal=False, scale=1.0,  # noqa: E731
                                                                             eps=eps))
pick_norms = [float(jacobian_wrt_scores(pick_weights(0.0), t * pick_base).abs().max()) for t in pick_scales]
EPS = 1e-3
capped = float(jacobian_wrt_scores(pick_weights(EPS), pick_scales[-1] * pick_base).abs().max())
cap = 2 * float((pick_scales[-1] * pick_base).exp().max()) / EPS  # |e^z_k (...)| <= 2 e^z_k, over S + eps >= eps
growth = pick_norms[-1] / pick_norms[-2]
_mc.check(9.5 < growth < 10.5 and pick_norms[-1] > 1e4,
          f"softpick (eps=0): max |dw/dz| grows like 1/mass as the logits shrink "
          f"({pick_norms[-2]:.3g} -> {pick_norms[-1]:.3g} for logits / 10, x{growth:.3f})")
_mc.check(capped <= cap, f"softpick with eps={EPS:g} caps it at the same logits ({capped:.3g} <= 2 e^max z / eps "
                         f"= {cap:.3g})")
_mc.record("B4", "SSMax Jacobian <= s log n / 4; stick-breaking <= 1/4; softpick unbounded as its row mass -> 0",
           f"sympy: SSMax {ssmax_ok}, stick-breaking {stick_ok}, softpick {pick_ok}; SSMax max / (s log n / 4) "
           + ", ".join(f"{ratio:.3f} at n={count}" for count, ratio in ssmax_ratios)
           + f" ({at_two / bound_two:.4f} at two equal logits)"
           + f"; stick-breaking {largest_stick:.3f}; softpick {pick_norms[-1]:.2g} at logits x1e-5 "
           f"(x{growth:.2f} per decade), {capped:.3g} with eps={EPS:g} (cap {cap:.3g})")

fig, ax = plt.subplots(figsize=(4.6, 3.3))
ax.loglog(scales * float(base.sum()), norms, "o-", label="linear (relu, normalised)")
ax.axhline(0.25, color="k", ls="--", label="softmax bound 1/4")
ax.axhline(1.0, color="gray", ls=":", label="ReLA (unnormalised) bound 1")
ax.set(xlabel="row mass sum_j phi(q).phi(k_j)", ylabel="max |dp/ds|")
ax.legend(fontsize=7)
ax.set_title("Q1: Jacobian of the attention weights", fontsize=10)
print("figure:", _mc.savefig(fig, "gradients"))
print("verdicts:", _mc.write_verdicts("gradients"))
