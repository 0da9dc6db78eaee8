# %% [markdown]
# # Gradients of normalised attention
#
# Claim **Q1** (Qin et al. 2022, arXiv 2210.10340): for row-normalised weights
# `p_ij = f(s_ij) / sum_k f(s_ik)`,
# `dp_ij / ds_ik = (f'/f)(s_ik) p_ij (delta_jk - p_ik)`. For softmax
# (`f = exp`, `f'/f = 1`) every entry is bounded by 1/4. For kernel-normalised
# linear attention (`f(s) = s` on positive similarities, `f'/f = 1/s`) the
# entries grow without bound as the row's mass tends to 0. ReLA's weights are
# not normalised: `d relu(s)/ds` is 0 or 1 (*our remark*), bounded, but the
# output scale is not (see `variance`).

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
# ## The Jacobian formula (symbolic, n = 3, any positive `f`)

# %%
s = sp.symbols("s0:3", real=True)
f = sp.Function("f", positive=True)
total = sum(f(x) for x in s)
p = [f(x) / total for x in s]
mismatches = [(j, k) for j in range(3) for k in range(3)
              if sp.simplify(sp.diff(p[j], s[k])
                             - sp.diff(f(s[k]), s[k]) / f(s[k]) * p[j] * ((1 if j == k else 0) - p[k])) != 0]
_mc.check(not mismatches, f"dp_j/ds_k = (f'/f)(s_k) p_j (delta_jk - p_k) for all j, k (sympy, n=3); "
          f"mismatches: {mismatches}")

x = sp.symbols("x", positive=True)
worst = sp.maximum(x * (1 - x), x, sp.Interval(0, 1))
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
_mc.record("Q1", "softmax Jacobian entries bounded by 1/4", f"max {largest:.4f} over random rows; 0.25 attained")

# %% [markdown]
# ## Linear attention: the Jacobian grows like 1 / (row mass)
#
# The project's `linear` weights with the `relu` feature map on head dimension 1
# (q = 1) are exactly `s_j / sum_l s_l` for positive keys `s_j`. Scaling all
# keys by `t` leaves the weights unchanged and multiplies the Jacobian by `1/t`.

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
           f"max|dp/ds| = {norms[-1]:.1e} at mass {scales[-1] * float(base.sum()):.1e}, scaling exactly 1/mass")

# %% [markdown]
# ## ReLA: entries 0 or 1

# %%
rela_weights = lambda q, k: attention.get("rela_g").weights(q, k, causal=False)  # noqa: E731
jac = jacobian_wrt_scores(rela_weights, torch.randn(16, generator=generator))
values = set(jac.unique().tolist())
_mc.check(values <= {0.0, 1.0}, f"ReLA: d relu(s)/ds entries in {{0, 1}} (saw {sorted(values)})")

fig, ax = plt.subplots(figsize=(4.6, 3.3))
ax.loglog(scales * float(base.sum()), norms, "o-", label="linear (relu, normalised)")
ax.axhline(0.25, color="k", ls="--", label="softmax bound 1/4")
ax.axhline(1.0, color="gray", ls=":", label="ReLA (unnormalised) bound 1")
ax.set(xlabel="row mass sum_j phi(q).phi(k_j)", ylabel="max |dp/ds|")
ax.legend(fontsize=7)
ax.set_title("Q1: Jacobian of the attention weights", fontsize=10)
print("figure:", _mc.savefig(fig, "gradients"))
print("verdicts:", _mc.write_verdicts("gradients"))
