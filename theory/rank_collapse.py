# %% [markdown]
# # Rank collapse in pure attention stacks
#
# Claim **K3** (Dong, Cordonnier, Loukas 2021, arXiv 2103.03404; Noci et al.
# 2022, arXiv 2206.03126): a stack of attention layers without skip
# connections or MLPs loses rank doubly exponentially with depth (every token
# converges to the same vector); skip connections prevent it; LayerNorm does
# not. If all tokens are equal, the gradients into $W_Q$ and $W_K$ are exactly
# zero for row-normalised attention (every row is uniform whatever the queries
# and keys). Stacks are built from the project's attention modules.
#
# The measure: the relative residual of the token matrix from its best rank-one
# approximation of the form $\mathbf{1} x^\top$,
#
# $$\operatorname{res}(X) = \frac{\|X - \mathbf{1} \operatorname{mean}(X)^\top\|}{\|X\|}.$$

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from theory import _mc
from experiments import attention

torch.set_default_dtype(torch.float64)
WIDTH, HEADS, TOKENS, DEPTH = 32, 2, 24, 12
SEEDS = _mc.size(8, 3)


def residual(x: torch.Tensor) -> float:
    return float((x - x.mean(dim=-2, keepdim=True)).norm() / x.norm())


def stack(name: str, seed: int, *, skip: bool, layer_norm: bool, **params) -> list[float]:
    torch.manual_seed(seed)
    layers = [attention.build_module(attention.make_config(name, **params), d_model=WIDTH, num_heads=HEADS)
              for _ in range(DEPTH)]
    for layer in layers:  # unit-scale projections, so the collapse is not an artefact of small weights
        for weight in (layer.q_proj.weight, layer.kv_proj.weight, layer.out_proj.weight):
            torch.nn.init.normal_(weight, std=1 / WIDTH**0.5)
    x = torch.randn(1, TOKENS, WIDTH)
    history = [residual(x)]
    with torch.no_grad():
        for layer in layers:
            update = layer(x, causal=False)
            x = x + update if skip else update
            if layer_norm:
                x = torch.nn.functional.layer_norm(x, (WIDTH,))
            history.append(residual(x))
    return history


def mean_history(*args, **kwargs) -> list[float]:
    runs = [stack(*args, seed=seed, **kwargs) for seed in range(SEEDS)]
    return [sum(values) / len(values) for values in zip(*runs)]


# %% [markdown]
# ## Without skips: softmax and linear attention collapse, with or without LayerNorm
#
# With skips the residual still shrinks slowly here (the updates are of the
# size of the stream at this initialisation), but geometrically and by
# orders of magnitude less than the collapse without them.

# %%
results = {}
for name in ("softmax", "linear", "relu"):
    results[(name, "pure")] = mean_history(name, skip=False, layer_norm=False)
    results[(name, "pure + LN")] = mean_history(name, skip=False, layer_norm=True)
    results[(name, "skip")] = mean_history(name, skip=True, layer_norm=False)
for (name, kind), history in results.items():
    print(f"{name:8s} {kind:10s} res at depth 0, 3, 6, 12: " + "  ".join(f"{history[d]:.1e}" for d in (0, 3, 6, 12)))

shrink = {}  # name -> the pure stack's per-layer shrink factor at the first layer and the last one compared
for name in ("softmax", "linear"):
    pure, normed, skipped = (results[(name, k)] for k in ("pure", "pure + LN", "skip"))
    _mc.check(pure[DEPTH] < 1e-6 * pure[0], f"{name}: pure stack collapses (res {pure[DEPTH]:.1e} at depth {DEPTH})")
    _mc.check(normed[DEPTH] < 1e-6 * normed[0], f"{name}: LayerNorm does not prevent it (res {normed[DEPTH]:.1e})")
    _mc.check(skipped[DEPTH] > 0.05 and skipped[DEPTH] > 1e10 * pure[DEPTH],
              f"{name}: skips keep the rank (res {skipped[DEPTH]:.2f} at depth {DEPTH}, against {pure[DEPTH]:.0e})")
    # doubly exponential: the per-layer shrink factor res[d] / res[d+1] grows with depth
    # (compared while the residual is above the float64 floor)
    drops = [pure[d] / pure[d + 1] for d in range(DEPTH) if pure[d + 1] > 1e-13]
    shrink[name] = (drops[0], drops[-1]) if drops else (float("nan"), float("nan"))
    _mc.check(len(drops) >= 2 and drops[-1] > drops[0],
              f"{name}: the per-layer shrink factor grows with depth {[f'{r:.1f}' for r in drops]}")
relu_pure = results[("relu", "pure")]
overflow = next((d for d, h in enumerate(relu_pure) if not h == h), None)  # NaN once the activations overflow
print(f"relu (unnormalised): the stack's activations overflow at depth {overflow}; without normalisation "
      "the output scale grows with n at every layer (see `variance`); reported, not a claim")
_mc.record("K3", "pure attention stacks collapse to rank one; skips prevent it; LayerNorm does not",
           f"res at depth {DEPTH}: " + "; ".join(
               f"{name} {results[(name, 'pure')][DEPTH]:.0e} (pure), {results[(name, 'pure + LN')][DEPTH]:.0e} (LN), "
               f"{results[(name, 'skip')][DEPTH]:.2f} (skip), pure shrink factor per layer {shrink[name][0]:.3g} -> "
               f"{shrink[name][-1]:.3g}" for name in ("softmax", "linear")))

# %% [markdown]
# ## Equal tokens: no gradient reaches $W_Q$ and $W_K$
#
# With every token equal, every score in a row is equal, so a row-normalised
# row is uniform whatever $W_Q, W_K$ are: their gradient is exactly zero. ReLA
# (no normalisation) is different: its weights $\operatorname{relu}(s)$ still depend on the
# scores, so gradients flow (*our remark*).

# %%
def query_key_gradient(name: str, **params) -> float:
    torch.manual_seed(0)
    layer = attention.build_module(attention.make_config(name, **params), d_model=WIDTH, num_heads=HEADS)
    x = torch.randn(1, 1, WIDTH).expand(2, TOKENS, WIDTH)
    target = torch.randn(2, TOKENS, WIDTH)
    ((layer(x, causal=True) - target) ** 2).sum().backward()
    key_part = layer.kv_proj.weight.grad[:WIDTH]
    return float(layer.q_proj.weight.grad.abs().max() + key_part.abs().max())


# linear attention's eps in the denominator makes a row a / (n a + eps), not exactly 1/n, so it
# leaks a gradient of the order of eps; the claim is about the normalised row, eps = 0
gradients = {}
for name, params in (("softmax", {}), ("linear", {"eps": 0.0}), ("sparsemax", {})):
    gradients[name] = query_key_gradient(name, **params)
    _mc.check(gradients[name] < 1e-12, f"{name}: equal tokens give zero W_Q, W_K gradient ({gradients[name]:.1e})")
rela_gradient = query_key_gradient("rela_g")
_mc.check(rela_gradient > 1e-3, f"rela_g (unnormalised): W_Q, W_K still get gradient ({rela_gradient:.2e})")
_mc.record("K3", "equal tokens: W_Q, W_K gradients exactly zero for row-normalised attention",
           "largest |gradient| " + ", ".join(f"{name} {value:.0e}" for name, value in gradients.items())
           + f"; rela_g {rela_gradient:.1e}")

fig, ax = plt.subplots(figsize=(5.2, 3.5))
styles = {"pure": "-", "pure + LN": "--", "skip": ":"}
colors = {"softmax": "tab:blue", "linear": "tab:orange", "relu": "tab:red"}
for (name, kind), history in results.items():
    ax.semilogy(range(DEPTH + 1), [max(h, 1e-18) for h in history], styles[kind], color=colors[name],
                label=f"{name} {kind}")
ax.set(xlabel="depth", ylabel="residual from rank one", title="K3: rank collapse without skips")
ax.legend(fontsize=6, ncol=3)
print("figure:", _mc.savefig(fig, "rank_collapse"))
print("verdicts:", _mc.write_verdicts("rank_collapse"))
