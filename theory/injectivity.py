# %% [markdown]
# # Injectivity: when do two queries get the same attention weights?
#
# Claim **H1** (Han et al., NeurIPS 2024, arXiv 2412.06590): with a positively
# homogeneous feature map (ReLU), normalised linear attention gives $q$ and
# $\alpha q$ ($\alpha > 0$) the same weights, so it cannot tell them apart;
# softmax weights for $p$ and $q$ are equal only if $K (p - q)$ is a multiple of
# the all-ones vector (softmax is shift invariant and nothing else); InLine
# attention (subtract the row mean instead of dividing by the row sum) is
# injective. All checks run the project's `linear`, `softmax` and `inline`.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

from theory import _mc
from experiments import attention

torch.set_grad_enabled(False)
generator = torch.Generator().manual_seed(0)
N_KEYS, DIM = 12, 4
keys = torch.randn(1, 1, N_KEYS, DIM, generator=generator, dtype=torch.float64)


def weights(name, q, **params):
    return attention.get(name).weights(q.view(1, 1, 1, DIM), keys, causal=False, **params).flatten()


# %% [markdown]
# ## Homogeneous feature maps collide along rays
#
# $\phi(\alpha q) = \alpha \phi(q)$ for ReLU, so
#
# $$\frac{\phi(\alpha q) \cdot \phi(k_j)}{\sum_l \phi(\alpha q) \cdot \phi(k_l)}
#   = \frac{\phi(q) \cdot \phi(k_j)}{\sum_l \phi(q) \cdot \phi(k_l)}.$$

# %%
a = sp.symbols("alpha", positive=True)
xs = sp.symbols("x0:3", real=True)
ks = sp.symbols("k0:3", positive=True)
relu_sym = lambda t: sp.Max(t, 0)  # noqa: E731
ratio = lambda scale: (relu_sym(scale * xs[0]) * ks[0]) / sum(relu_sym(scale * x) * k for x, k in zip(xs, ks))  # noqa: E731
ys = sp.symbols("y0:3", positive=True)
sign_cases = [dict(zip(xs, (sx * ys[0], sy * ys[1], sz * ys[2]))) for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)]
# the all-negative case has no mass at all (0/0); every other sign pattern must be invariant
ray_differences = [sp.simplify((ratio(a) - ratio(1)).subs(case)) for case in sign_cases[:-1]]
_mc.show("w_0(alpha q) for q = (y0, -y1, y2), y > 0", sp.simplify(ratio(a).subs(sign_cases[2])),
         tex=r"w_0(\alpha q) \text{ for } q = (y_0, -y_1, y_2), \ y > 0")
_mc.check(all(difference == 0 for difference in ray_differences),
          "relu-normalised weight is invariant to q -> alpha q in every sign pattern (sympy)")

q = torch.randn(DIM, generator=generator, dtype=torch.float64)
alphas = [0.1, 0.5, 2.0, 10.0]
linear_gaps = [float((weights("linear", alpha * q, feature_map="relu", eps=0.0)
                      - weights("linear", q, feature_map="relu", eps=0.0)).abs().max()) for alpha in alphas]
softmax_gaps = [float((weights("softmax", alpha * q) - weights("softmax", q)).abs().max()) for alpha in alphas]
inline_gaps = [float((weights("inline", alpha * q) - weights("inline", q)).abs().max()) for alpha in alphas]
print("alpha         ", alphas)
print("linear (relu) ", [f"{g:.1e}" for g in linear_gaps])
print("softmax       ", [f"{g:.1e}" for g in softmax_gaps])
print("inline (relu) ", [f"{g:.1e}" for g in inline_gaps])
_mc.check(max(linear_gaps) < 1e-12, "linear attention with relu: q and alpha q get identical weights")
_mc.check(min(softmax_gaps) > 1e-3 and min(inline_gaps) > 1e-3, "softmax and InLine tell q and alpha q apart")

# %% [markdown]
# ## Softmax collides exactly on $K (p - q) = c \mathbf{1}$
#
# $\operatorname{softmax}(x + c \mathbf{1}) = \operatorname{softmax}(x)$ (symbolic), and for
# generic keys with $n > d$ the only shifts reachable by changing the query are multiples
# of $\mathbf{1}$ when $\mathbf{1}$ is in the column space of $K$. We construct such a pair
# by making $\mathbf{1}$ reachable: append a constant coordinate to the keys, so
# $\delta = (0, \dots, 0, c)$ gives $K \delta = c \mathbf{1}$; then a random $\delta$ gives
# different weights.

# %%
x = sp.symbols("x0:3", real=True)
c = sp.symbols("c", real=True)
soft = lambda v: [sp.exp(t) / sum(sp.exp(u) for u in v) for t in v]  # noqa: E731
shift_differences = [sp.simplify(u - w) for u, w in zip(soft([t + c for t in x]), soft(list(x)))]
_mc.show("softmax(x + c 1)_0", sp.simplify(soft([t + c for t in x])[0]),
         tex=r"\operatorname{softmax}(x + c \mathbf{1})_0")
_mc.check(all(difference == 0 for difference in shift_differences), "softmax(x + c 1) = softmax(x) (sympy)")

keys = torch.cat([torch.randn(1, 1, N_KEYS, DIM - 1, generator=generator, dtype=torch.float64),
                  torch.ones(1, 1, N_KEYS, 1, dtype=torch.float64)], dim=-1)
q = torch.randn(DIM, generator=generator, dtype=torch.float64)
shift = torch.zeros(DIM, dtype=torch.float64)
shift[-1] = 1.7
on_ones = float((weights("softmax", q + shift) - weights("softmax", q)).abs().max())
_mc.check(on_ones < 1e-12, f"softmax: K(p - q) = c 1 gives identical weights (gap {on_ones:.1e})")
other = torch.randn(DIM, generator=generator, dtype=torch.float64)
other[-1] = 0.0
off_ones = float((weights("softmax", q + other) - weights("softmax", q)).abs().max())
_mc.check(off_ones > 1e-3,
          f"softmax: a change of q with K(p - q) not parallel to 1 changes the weights ({off_ones:.1e})")

# %% [markdown]
# ## InLine is injective
#
# InLine's row is
#
# $$\phi(K) \phi(q) - \operatorname{mean}\big(\phi(K) \phi(q)\big) \mathbf{1} + \frac{1}{n}:$$
#
# affine in $\phi(q)$, with linear part $C \phi(K)$ ($C$ the centring matrix). It is
# injective in $\phi(q)$ iff $C \phi(K)$ has full column rank (*our
# derivation*: generic keys with $n > F$ satisfy it), and ReLU loses only the
# negative part, so distinct non-negative feature vectors give distinct rows.
# Numerically: the rank of $C \phi(K)$ is $F$, and random pairs of queries never
# collide, while normalised linear attention collides on every ray.

# %%
keys = torch.randn(1, 1, N_KEYS, DIM, generator=generator, dtype=torch.float64)
features = torch.relu(keys[0, 0])
centring = torch.eye(N_KEYS, dtype=torch.float64) - 1.0 / N_KEYS
rank = int(torch.linalg.matrix_rank(centring @ features))
_mc.check(rank == DIM, f"rank of C phi(K) = {rank} = F = {DIM}")
pairs = _mc.size(2000, 300)
qs = torch.randn(pairs, 2, DIM, generator=generator, dtype=torch.float64).abs()
distance = min(float((weights("inline", a) - weights("inline", b)).abs().max()) for a, b in qs)
_mc.check(distance > 1e-6, f"InLine: {pairs} random query pairs, smallest weight difference {distance:.2e} > 0")
_mc.record("H1", "homogeneous phi: q and alpha q collide under linear attention; softmax only when K(p-q) || 1; "
           "InLine injective",
           f"weight gap along the ray {max(linear_gaps):.0e} (linear, relu), >= {min(softmax_gaps):.1e} (softmax), "
           f">= {min(inline_gaps):.1e} (InLine); softmax gap {on_ones:.0e} on K(p - q) = c 1, {off_ones:.1e} off it; "
           f"InLine: rank C phi(K) = {rank} of {DIM}, smallest gap {distance:.1e} over {pairs} query pairs")

fig, ax = plt.subplots(figsize=(4.6, 3.3))
ax.semilogy(alphas, np.maximum(linear_gaps, 1e-17), "o-", label="linear (relu)")
ax.semilogy(alphas, softmax_gaps, "s-", label="softmax")
ax.semilogy(alphas, inline_gaps, "^-", label="inline (relu)")
ax.set(xlabel="alpha", ylabel="max |w(alpha q) - w(q)|", xscale="log")
ax.legend(fontsize=8)
ax.set_title("H1: queries along a ray", fontsize=10)
print("figure:", _mc.savefig(fig, "injectivity"))
print("verdicts:", _mc.write_verdicts("injectivity"))
