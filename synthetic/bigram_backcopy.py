"""Bigram-Backcopy (Guo, Pai, Bai, Jiao, Jordan, Mei 2024, "Active-Dormant Attention Heads", arXiv 2410.13835).

Every sequence opens with a first token ``BOS = 0`` that appears nowhere else. After it, tokens follow a
fixed bigram Markov chain over the content tokens ``1 .. V-1``, except that the token right after a
*trigger* copies the token just before that trigger. Triggers are the ``num_triggers`` most frequent
content tokens (the largest stationary probabilities of the chain). Only the prediction made at a
trigger needs attention (to the token just before the trigger); elsewhere the current token says all
there is to know and a head has nothing to do: it goes dormant, which in softmax heads shows as a sink
on the first token. :func:`trigger_positions` marks the active rows; the others are the dormant ones.

Followed from the authors' generator (class ``bbm`` of ``data.py`` in ``GuoTianYu2000/transformer-birth``,
which ``BBM/train_main.py`` of ``GuoTianYu2000/Active-Dormant-Attention`` runs as ``task_name=bbm``):
triggers fixed to the ``k`` most frequent tokens, ``k = 3`` in their scripts; one ``BOS`` that no row
leads to; the token after ``BOS`` drawn from the unigram with the triggers removed (so no copy reaches
back to ``BOS``); 256 tokens per sequence; and the label is the next token at **every** position,
``BOS``'s included, since their loss is a plain cross-entropy over the whole shifted sequence. Keeping
the bigram positions in the loss is the point: the dormant rows are the ones trained there.

What differs: their chain is the character bigram table of tiny Shakespeare (65 characters, whose
three most frequent, space, ``e`` and ``t``, hold 30% of the unigram mass). Here it is drawn once from
``chain_seed``, a fixed "language" like the alignment task's lexicon: row ``a`` is
``softmax(-zipf_exponent * log(rank) + peakedness * g_a)`` over the content tokens, ``rank = 1 .. V-1``
and ``g_a`` standard normal, a Zipf unigram that each token bends its own way (``peakedness`` 0 makes
every row the unigram; larger makes successors more predictable). With the defaults the three triggers
hold 27% of the stationary mass.

Worked example (V=8, seq_len=12, num_triggers=2, chain_seed=0; the first example drawn with
``manual_seed(5)``; the triggers are 2 and 4, marked ``^``, and after each the label is the token
before it)::

    position  0  1  2  3  4  5  6  7  8  9 10 11
    input     0  5  2  5  2  5  7  5  5  7  4  7
                    ^     ^                 ^
    label     5  2  5  2  5  7  5  5  7  4  7  3

Accuracy levels, exact from the distribution of each position's token (:func:`accuracy_levels`):
after a non-trigger token nothing beats the bigram argmax, which needs no attention and scores that
row's largest probability; after a trigger the copy is certain. **Chance** (:func:`chance`) is the best
a model reaches looking only at the current token, as one whose attention does nothing: the bigram
argmax after non-triggers and, after each trigger, its most likely predecessor. **Ceiling**
(:func:`ceiling`) is the best any model reaches: the bigram argmax after non-triggers and every copy
right. The task states both, so a run has learned halfway from chance to the ceiling (at the defaults
chance 0.440, ceiling 0.644, threshold 0.542), not halfway to 1 (0.720, above the ceiling).

Constraints: ``num_triggers >= 1`` with two other content tokens at least (``V >= num_triggers + 3``);
``V <= 4096`` (the chain is a dense ``V x V`` table); ``seq_len >= 3`` (room for one copy);
``zipf_exponent`` in [0, 4] and ``peakedness`` in [0, 10].
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import torch

from experiments.config import param, require
from synthetic import Task, TaskConfig, register

BOS, FIRST_CONTENT = 0, 1
MAX_VOCAB = 4096


@dataclasses.dataclass(frozen=True)
class BigramBackcopyConfig(TaskConfig):
    vocab_size: int = param(64, "vocabulary V: BOS = 0, content tokens 1..V-1 (the authors': 65 characters)")
    seq_len: int = param(256, "tokens per example, BOS included (the authors' 256)")
    num_triggers: int = param(3, "trigger tokens k: the k most frequent content tokens (the authors' k = 3)")
    zipf_exponent: float = param(1.0, "skew of the unigram the bigram rows share: p(rank r) ∝ r^-s; 0 is uniform")
    peakedness: float = param(1.5, "std of the per-row Gaussian logit noise: 0 makes every row the unigram, "
                                   "larger makes each token's successors more peaked and its own")
    chain_seed: int = param(0, "seed of the fixed bigram transition matrix")

    def __post_init__(self):
        super().__post_init__()
        v, k = self.vocab_size, self.num_triggers
        require(k >= 1, f"num_triggers must be at least 1, got {k}")
        require(v >= k + 3, f"num_triggers={k} triggers, BOS and two other content tokens need "
                            f"vocab_size >= {k + 3}, got vocab_size={v}")
        require(v <= MAX_VOCAB, f"vocab_size must be at most {MAX_VOCAB} (the chain is a dense V x V table), got {v}")
        require(self.seq_len >= 3, f"seq_len must be at least 3 (BOS, a token and a trigger), got {self.seq_len}")
        require(0.0 <= self.zipf_exponent <= 4.0, f"zipf_exponent must be in [0, 4], got {self.zipf_exponent}")
        require(0.0 <= self.peakedness <= 10.0, f"peakedness must be in [0, 10], got {self.peakedness}")


class Chain(NamedTuple):
    transition: torch.Tensor  # (V, V) float64: row BOS is the first token's distribution, column BOS is 0
    cumulative: torch.Tensor  # (V, V) float64: row-wise CDF whose last positive entry is exactly 1
    is_trigger: torch.Tensor  # (V,) bool


def _stationary(transition: torch.Tensor) -> torch.Tensor:
    """The stationary distribution of a chain with positive entries: ``pi P = pi``, ``sum pi = 1``."""
    n = transition.shape[0]
    system = transition.T - torch.eye(n, dtype=transition.dtype)
    system[-1] = 1.0  # replace one (redundant) balance equation by the normalisation
    target = torch.zeros(n, dtype=transition.dtype)
    target[-1] = 1.0
    return torch.linalg.solve(system, target)


@functools.lru_cache(maxsize=16)
def chain(config: BigramBackcopyConfig, device: torch.device | str = "cpu") -> Chain:
    """The fixed chain of ``config`` (drawn on the CPU from ``chain_seed``, cached per config and device)."""
    generator = torch.Generator().manual_seed(config.chain_seed)
    content = config.vocab_size - FIRST_CONTENT
    rank = torch.arange(1, content + 1, dtype=torch.float64)
    noise = torch.randn(content, content, generator=generator, dtype=torch.float64)
    successors = (-config.zipf_exponent * rank.log() + config.peakedness * noise).softmax(dim=1)  # (C, C)
    unigram = _stationary(successors)
    is_trigger = torch.zeros(config.vocab_size, dtype=torch.bool)
    is_trigger[FIRST_CONTENT + unigram.topk(config.num_triggers).indices] = True
    first = torch.where(is_trigger[FIRST_CONTENT:], 0.0, unigram)  # no trigger right after BOS: nothing to copy

    transition = torch.zeros(config.vocab_size, config.vocab_size, dtype=torch.float64)
    transition[BOS, FIRST_CONTENT:] = first / first.sum()
    transition[FIRST_CONTENT:, FIRST_CONTENT:] = successors
    running = transition.cumsum(dim=1)
    cumulative = running / running[:, -1:]  # x / x == 1 exactly, so a uniform draw in [0, 1) never runs off the end
    return Chain(transition.to(device), cumulative.to(device), is_trigger.to(device))


def generate(config: BigramBackcopyConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device, batch, length = generator.device, num_examples, config.seq_len
    _, cumulative, is_trigger = chain(config, device)
    uniform = torch.rand(batch, length, generator=generator, device=device, dtype=torch.float64)  # (B, T)
    uniform = uniform.T.contiguous().unsqueeze(-1)  # (T, B, 1); drawn (B, T) so an example is the same in any batch
    tokens = torch.full((batch, length + 1), BOS, dtype=torch.long, device=device)
    for t in range(length):
        current = tokens[:, t]
        drawn = torch.searchsorted(cumulative[current], uniform[t], right=True).squeeze(1)  # (B,)
        before = tokens[:, max(t - 1, 0)]  # at t = 0 the current token is BOS, never a trigger
        tokens[:, t + 1] = torch.where(is_trigger[current], before, drawn)
    return tokens[:, :-1], tokens[:, 1:].clone()  # every position is labelled with the token after it


def trigger_positions(config: BigramBackcopyConfig, inputs: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` bool: the token there is a trigger, so its label is a copy (the rows where a head is active);
    the other rows are the dormant ones."""
    return chain(config, inputs.device).is_trigger[inputs]


def slices(config: BigramBackcopyConfig, batch):
    """Trigger positions per example (the copies it asks for)."""
    inputs, _ = batch
    return {"triggers": trigger_positions(config, inputs).sum(dim=1)}


@functools.lru_cache(maxsize=16)
def accuracy_levels(config: BigramBackcopyConfig) -> tuple[float, float]:
    """``(chance, ceiling)``: mean over positions of the best current-token-only guess and of the best guess.

    The token distribution ``m_t`` of each position follows from the generator: a non-trigger moves by
    the chain, and a trigger is always reached from a non-trigger and followed by that token, so
    ``m_{t+1} = (m_t * free) P + m_{t-1} * free * P[:, triggers].sum(1)``, with ``free`` the non-triggers.
    """
    transition, _, is_trigger = chain(config)
    free = (~is_trigger).double()
    best_next = transition.max(dim=1).values  # accuracy of the bigram argmax after each token
    into_trigger = transition[:, is_trigger].sum(dim=1)
    current = torch.zeros(config.vocab_size, dtype=torch.float64)
    current[BOS] = 1.0
    before = torch.zeros_like(current)
    occurs = torch.zeros_like(current)  # sum over positions of P(token = c)
    predecessors = torch.zeros_like(current)  # sum over positions of P(token before = a), a a non-trigger
    for _ in range(config.seq_len):
        occurs += current
        predecessors += before * free
        current, before = (current * free) @ transition + before * free * into_trigger, current
    bigram = float((occurs * free * best_next).sum())
    copies = float(occurs[is_trigger].sum())
    # after trigger tau the label is the token before it: a with weight predecessors[a] * P[a, tau]
    guessed = float((predecessors[:, None] * transition[:, is_trigger]).max(dim=0).values.sum())
    return (bigram + guessed) / config.seq_len, (bigram + copies) / config.seq_len


def chance(config: BigramBackcopyConfig) -> float:
    """The best accuracy from the current token alone (a model whose attention does nothing): the bigram
    argmax after non-triggers, the most likely predecessor after each trigger (see the module docstring)."""
    return accuracy_levels(config)[0]


def ceiling(config: BigramBackcopyConfig) -> float:
    """The best accuracy possible: the bigram argmax after non-triggers (the mean largest transition
    probability, weighted by how often each token occurs) and every copy right."""
    return accuracy_levels(config)[1]


def active_rows(config: BigramBackcopyConfig, batch) -> torch.Tensor:
    """The trigger positions of a batch: where a head must attend (to the token before) to predict."""
    return trigger_positions(config, batch[0])


register(Task(name="bigram_backcopy", config=BigramBackcopyConfig, generate=generate, slices=slices, chance=chance,
              ceiling=ceiling, active_rows=active_rows,
              summary="bigram Markov chain; after a trigger token, copy the token before it (active-dormant heads)"))
