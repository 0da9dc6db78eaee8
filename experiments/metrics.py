"""Metrics beyond token accuracy: exact match, accuracy by slice, alignment error rate, the sink probe.

AER (Och & Ney 2003) of predicted links ``A`` against sure links ``S`` and
possible links ``P`` (with ``S`` a subset of ``P``)::

    AER = 1 - (|A n S| + |A n P|) / (|A| + |S|)

0 is perfect. With only sure links (``P = S``) it is ``1 - 2|A n S| / (|A| + |S|)``.
Links induced from attention follow ReLA (arXiv 2104.07012): for each
target token, the argmax source position of a head's cross-attention row;
an all-zero row (a ReLA head switched off) induces no link.
"""

from __future__ import annotations

import math
from typing import Any
from collections import defaultdict

import torch

import synthetic
from experiments import attention_stats


def aer(predicted: torch.Tensor, sure: torch.Tensor, possible: torch.Tensor | None = None) -> float:
    """AER of boolean link tensors of one shape (any leading dims)."""
    possible = sure if possible is None else possible | sure
    hits_sure = (predicted & sure).sum().item()
    hits_possible = (predicted & possible).sum().item()
    total = predicted.sum().item() + sure.sum().item()
    if total == 0:
        raise ValueError("AER is undefined with no predicted and no gold links")
    return 1.0 - (hits_sure + hits_possible) / total


def induced_links(weights: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, S)`` links: each head's argmax source per target row in ``rows`` ``(B, T)``; none if all zero."""
    best = weights.abs().argmax(dim=-1, keepdim=True)  # (B, H, T, 1)
    links = torch.zeros_like(weights, dtype=torch.bool).scatter_(-1, best, True)
    alive = (weights != 0).any(dim=-1, keepdim=True)
    return links & alive & rows[:, None, :, None]


AER_ROWS = "every target word"  # the rows alignment_error scores when given the target words


def target_words(labels: torch.Tensor) -> torch.Tensor:
    """``(B, T)``: the label positions of a seq2seq batch that are target words (not the end token, not
    padding)."""
    from synthetic.alignment import EOS

    return (labels != synthetic.IGNORE_INDEX) & (labels != EOS)


def alignment_error(layer_weights: list[torch.Tensor], gold: torch.Tensor,
                    rows: torch.Tensor | None = None, possible: torch.Tensor | None = None) -> dict[str, list]:
    """AER per layer and head, and the best head's per layer.

    ``gold`` ``(B, T, S)`` are the sure links, ``possible`` (optional, same
    shape) the possible ones. ``rows`` ``(B, T)`` are the target rows scored:
    every target word (:data:`AER_ROWS`), so a link from a word with no gold
    link (an unaligned particle) counts against a head unless it is a
    possible link, and a null row there costs nothing. Without ``rows``, the
    rows that have a gold link.
    """
    rows = gold.any(dim=-1) if rows is None else rows  # (B, T)
    per_head = []
    for weights in layer_weights:
        links = induced_links(weights, rows)
        per_head.append([aer(links[:, h], gold, possible) for h in range(weights.shape[1])])
    out = {"per_head": per_head, "best_per_layer": [min(values) for values in per_head]}
    unaligned = rows & ~gold.any(dim=-1)
    if bool(unaligned.any()):  # where a head may switch off: its all-zero rows at unaligned and aligned words
        aligned = rows & gold.any(dim=-1)
        dead = [(w == 0).all(dim=-1) for w in layer_weights]  # (B, H, T) per layer
        out["null_rate"] = {name: [[float(d[:, h][where].double().mean()) for h in range(d.shape[1])] for d in dead]
                            for name, where in (("unaligned", unaligned), ("aligned", aligned))}
    return out


def per_example(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct, asked)`` per example ``(B,)``: labelled positions predicted right, and labelled positions."""
    asked = labels != synthetic.IGNORE_INDEX
    correct = (logits.argmax(dim=-1) == labels) & asked
    return correct.sum(dim=1), asked.sum(dim=1)


def by_slice(correct: torch.Tensor, asked: torch.Tensor, values: torch.Tensor) -> dict[str, float]:
    """Token accuracy grouped by a per-example slice value."""
    groups: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for c, a, v in zip(correct.tolist(), asked.tolist(), values.tolist()):
        groups[v][0] += c
        groups[v][1] += a
    return {str(v): c / a for v, (c, a) in sorted(groups.items()) if a > 0}


def summarise_attention(layer_weights: list[torch.Tensor], *, causal: bool) -> dict[str, dict[str, float]]:
    """Every statistic of :mod:`experiments.attention_stats`: mean and max over layers and heads, and per layer."""
    per_layer = attention_stats.summarise([w.float() for w in layer_weights], causal=causal)
    out = {}
    for name in attention_stats.STATISTICS:
        values = [v for layer in per_layer for v in layer[name]]
        out[name] = {"mean": sum(values) / len(values), "max": max(values),
                     "per_layer": [layer[name] for layer in per_layer]}
    return out


def top_share(activations: torch.Tensor, fraction: float, *, rounding: str = "ceil") -> torch.Tensor:
    """Per row of ``(..., slots)``: the share of ``|activation|`` mass in the top ``fraction`` of the slots.

    ``rounding`` turns ``fraction * slots`` into a count of slots (at least
    one): ``ceil`` (at least that fraction) or ``nearest`` (the whole number
    of slots closest to it; 0.2% of 512 slots is 1 slot, not 2).
    """
    act = activations.abs()
    exact = fraction * act.shape[-1]
    keep = max(1, math.ceil(exact) if rounding == "ceil" else round(exact))
    top = act.topk(keep, dim=-1).values.sum(-1)
    return top / act.sum(-1).clamp_min(1e-30)


def head_diversity_at(layer_weights: list[torch.Tensor], rows: torch.Tensor) -> float | None:
    """Jensen-Shannon divergence across heads at the query rows ``rows`` ``(B, T)`` (the positions a task asks
    about: the same rows for every variant), averaged over layers.

    At each row the divergence is taken among the heads with mass there
    (``Ent(mean p) - mean Ent(p)``); a row where fewer than two heads have
    mass counts as 0 (one distribution, nothing to diverge from), so a
    variant whose heads switch off is scored on the same rows as one whose
    heads cannot. None if no row is asked.
    """
    if not bool(rows.any()):
        return None
    values = []
    for weights in layer_weights:
        p, alive = attention_stats._distributions(weights)  # (B, H, T, S) rows summing to 1; (B, H, T)
        count = alive.sum(dim=1)  # (B, T)
        mixture = (p * alive.unsqueeze(-1)).sum(dim=1) / count.clamp_min(1).unsqueeze(-1)
        mean_entropy = (attention_stats._entropy(p) * alive).sum(dim=1) / count.clamp_min(1)
        js = torch.where(count >= 2, attention_stats._entropy(mixture) - mean_entropy, torch.zeros_like(mean_entropy))
        values.append(float(js[rows].mean()))
    return sum(values) / len(values)


@torch.no_grad()
def ffn_top_mass(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], fraction: float = 0.002, *,
                 at_labels: bool = False) -> float | None:
    """Share of each token's MLP activation mass held by its top ``fraction`` of slots (ReLUFormer S6).

    Activations are taken after the MLP's nonlinearity (softmax rows for the
    softmax memories, ``|relu|`` / ``|gelu|`` otherwise), averaged over tokens
    and blocks; None for a model without MLPs. By default every position
    counts and the slot count is rounded up (:func:`top_share`); with
    ``at_labels`` only the positions that carry a label count (those that
    query the memory: the others are not asked to recall anything), the
    count is the nearest whole number of slots, and a decoder-only batch
    ``(inputs, labels)`` is required (None otherwise).
    """
    from experiments.model import MLP

    if at_labels and len(batch) != 2:
        return None
    asked = batch[1] != synthetic.IGNORE_INDEX if at_labels else None
    width = batch[0].shape[1] if len(batch) == 2 else None  # a decoder-only model's tokens, after any start vector
    shares = []

    def hook(module, inputs, output):
        share = top_share(inputs[0], fraction, rounding="nearest" if at_labels else "ceil")  # the MLP's activation
        share = share[:, -width:] if width else share
        shares.append(float(share[asked].mean() if asked is not None else share.mean()))

    handles = [m.down.register_forward_hook(hook) for m in model.modules() if isinstance(m, MLP)]
    try:
        if not handles or (asked is not None and not bool(asked.any())):
            return None
        was_training = model.training
        model.eval()
        if len(batch) == 4:
            model(batch[0], batch[1])
        else:
            model(batch[0])
        model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    return sum(shares) / len(shares)


SINK_STATISTICS = ("first_weight_dormant", "first_share_dormant", "first_weight_active", "row_mass_dormant",
                   "null_dormant", "value_norm_ratio")


def sink_statistics(layer_weights: list[torch.Tensor], value_norms: list[torch.Tensor],
                    active: torch.Tensor) -> dict[str, Any]:
    """The attention-sink probe (Guo et al. 2024, arXiv 2410.13835) per layer and head of a causal model.

    ``active`` ``(B, T)`` marks the rows whose label needs attention; the
    others that see at least two keys are the *dormant* rows. Per head:
    ``first_weight_dormant``, the mean weight on key 0 (the first token) at
    dormant rows; ``first_share_dormant``, that weight over the row's total
    (an all-zero row counts 0: it puts nothing there); ``first_weight_active``,
    the weight on key 0 at active rows; ``row_mass_dormant``, the mean row
    total at dormant rows (1 for softmax); ``null_dormant``, the share of
    dormant rows that are all zero; ``value_norm_ratio``, the norm of the first
    token's value over the mean norm of the others' (a *value drain* is well
    below 1). ``uniform`` is the weight a row spreading its mass evenly puts
    on key 0, averaged over the dormant rows.
    """
    mask = attention_stats.visible_mask(layer_weights[0], causal=True)  # (T, Tk)
    seen = mask.sum(dim=-1)  # keys each row sees
    dormant = ~active.to(mask.device) & (seen >= 2)  # (B, T)
    awake = active.to(mask.device) & (seen >= 2)
    per_layer = []
    for weights, norms in zip(layer_weights, value_norms):
        w = weights.double().masked_fill(~mask, 0.0)  # (B, H, T, Tk)
        total = w.sum(dim=-1)
        first = w[..., 0]
        share = first / torch.where(total != 0, total, torch.ones_like(total))
        null = (w == 0).all(dim=-1).double()
        norms = norms.double()
        per_layer.append({
            "first_weight_dormant": _mean_over(first, dormant), "first_share_dormant": _mean_over(share, dormant),
            "first_weight_active": _mean_over(first, awake), "row_mass_dormant": _mean_over(total, dormant),
            "null_dormant": _mean_over(null, dormant),
            "value_norm_ratio": (norms[..., 0] / norms[..., 1:].mean(dim=-1).clamp_min(1e-12)).mean(dim=0).tolist()})
    uniform = float((1.0 / seen.double()).expand_as(dormant)[dormant].mean()) if dormant.any() else float("nan")
    return {"per_layer": per_layer, "uniform": uniform}


def _mean_over(values: torch.Tensor, rows: torch.Tensor) -> list[float]:
    """Per head, the mean of ``values`` ``(B, H, T)`` over the marked rows ``(B, T)`` (NaN where none is)."""
    counted = rows.unsqueeze(1).double()
    sums = (values * counted).sum(dim=(0, 2))
    count = counted.sum(dim=(0, 2))
    return (sums / count).tolist() if float(count.min()) > 0 else [float("nan")] * values.shape[1]


def first_example_maps(layer_weights: list[torch.Tensor], tokens: torch.Tensor) -> dict[str, Any]:
    """The attention weights of the first example, every layer and head, to 3 decimals (for a gallery):
    ``{"tokens": [T], "maps": [layer][head][T][T]}`` (the keys of the tokens: a start vector's column is left
    out)."""
    length = tokens.shape[1]
    return {"tokens": tokens[0].tolist(),
            "maps": [[[[round(float(x), 3) for x in row] for row in head] for head in w[0, ..., -length:].float().cpu()]
                     for w in layer_weights]}


@torch.no_grad()
def decode_state_bytes(model: torch.nn.Module, length: int) -> int | None:
    """Bytes of every attention layer's decoding state after ``length`` tokens, from the real state tensors
    (one forward pass with ``output_final_state``: the state decoding would carry).

    A key-value cache grows with the length; a linear-attention state does not.
    None for models without a decoder-only stack (the encoder-decoder).
    """
    from experiments.attention.base import cache_bytes
    from experiments.model import Transformer

    if not isinstance(model, Transformer):
        return None
    parameter = next(model.parameters())
    generator = torch.Generator(device=parameter.device).manual_seed(0)
    total = 0
    for block in model.blocks:
        x = torch.randn(1, length, model.config.d_model, generator=generator, device=parameter.device,
                        dtype=parameter.dtype)
        _, state = block.attn(x, output_final_state=True)
        total += cache_bytes(state)
    return total
