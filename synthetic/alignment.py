"""A seq2seq task whose gold word alignment is known by construction (the R7 analog).

A source sentence of ``source_len`` content tokens is translated word by word
through a fixed lexicon (a bijection of the content vocabulary drawn from
``lexicon_seed``) and reordered:

- ``identity``: target order = source order;
- ``reversal``: the target is reversed;
- ``local_swaps``: adjacent pairs (0,1), (2,3), ... swap with ``swap_prob``;
- ``permutation``: a uniform random order per example.

With ``fertility_prob > 0`` a source word produces, with that probability,
a second target word (through a second lexicon): a one-to-many link. With
``particle_fraction > 0`` that fraction of the source words (a fixed class,
drawn with the lexicons) is preceded in the target by a particle, token
``PARTICLE = 3``, like an article before a noun: a target word with no gold
link (unaligned), predictable only by looking at the source word it comes
before. Content tokens are then ``4 .. V-1`` on both sides. With
``possible_links`` a particle's link to the source word it precedes is a
*possible* gold link (:func:`possible_links`): gold alignments of real
sentence pairs mark sure links (S) and possible ones (P), such as a function
word's, and AER is ``1 - (|A & S| + |A & P|) / (|A| + |S|)`` (Och and Ney
2003; ReLA's R7 metric), so a possible link neither counts against a head
nor is required of it. The
decoder reads ``BOS y_1 .. y_T`` and is labelled ``y_1 .. y_T EOS``; padding
is ``PAD`` with label ``-100``. The gold alignment ``(B, T_max, S)`` marks
label position ``t`` as aligned to the source position its word came from
(sure links; ``EOS`` and padding have none). Tokens: ``PAD = 0``, ``BOS = 1``,
``EOS = 2``, content ``3 .. V-1`` on both sides.

Worked example (source_len=3, reversal, no fertility; source ``5 7 4``,
lexicon 5->8, 7->3, 4->6)::

    source   5 7 4
    inputs   1 6 3 8 0 0 0        labels  6 3 8 2 . . .
    gold     label 0 <- source 2, label 1 <- source 1, label 2 <- source 0

Constraints: ``V >= 4`` (``V >= 5`` with particles); ``source_len >= 1``; probabilities and fractions
in [0, 1].
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from experiments.config import check_choices, param, require
from synthetic import IGNORE_INDEX, Task, TaskConfig, register

PAD, BOS, EOS, FIRST_CONTENT = 0, 1, 2, 3
PARTICLE = 3  # with particle_fraction > 0: the unaligned target word (content starts at 4 then)
REORDERINGS = ("identity", "reversal", "local_swaps", "permutation")


@dataclasses.dataclass(frozen=True)
class AlignmentConfig(TaskConfig):
    vocab_size: int = param(32, "vocabulary on each side; content tokens 3..V-1")
    source_len: int = param(12, "source tokens per example")
    reordering: str = param("identity", "target word order", choices=REORDERINGS)
    swap_prob: float = param(0.5, "local_swaps: probability that an adjacent pair swaps")
    fertility_prob: float = param(0.0, "probability that a source word yields two target words (one-to-many)")
    particle_fraction: float = param(0.0, "fraction of the source words whose translation is preceded by an "
                                          "unaligned particle (a target word with no gold link: what null attention "
                                          "can leave unlinked; ReLA, arXiv 2104.07012)", added=True)
    possible_links: bool = param(False, "with particles: a particle's link to the source word it precedes is a "
                                        "possible gold link (sure/possible links, Och and Ney 2003; AER as in ReLA, "
                                        "arXiv 2104.07012); without, a particle has no gold link", added=True)
    lexicon_seed: int = param(11, "seed of the word-to-word lexicons")

    def __post_init__(self):
        super().__post_init__()
        check_choices(self)
        require(self.vocab_size >= FIRST_CONTENT + 1, f"vocab_size must be at least 4, got {self.vocab_size}")
        require(self.source_len >= 1, f"source_len must be positive, got {self.source_len}")
        require(0.0 <= self.swap_prob <= 1.0, f"swap_prob must be in [0, 1], got {self.swap_prob}")
        require(0.0 <= self.fertility_prob <= 1.0, f"fertility_prob must be in [0, 1], got {self.fertility_prob}")
        require(0.0 <= self.particle_fraction <= 1.0,
                f"particle_fraction must be in [0, 1], got {self.particle_fraction}")
        require(self.particle_fraction == 0 or self.vocab_size >= 5,
                f"particle_fraction > 0 needs vocab_size >= 5 (token 3 is the particle), got {self.vocab_size}")
        require(not self.possible_links or self.particle_fraction > 0,
                "possible_links needs particles (particle_fraction > 0): they are the possibly linked words")

    @property
    def first_content(self) -> int:
        return FIRST_CONTENT + (self.particle_fraction > 0)

    @property
    def seq_len(self) -> int:
        """Longest decoder sequence: two words per source word (three with particles), plus BOS/EOS."""
        return (2 + (self.particle_fraction > 0)) * self.source_len + 1


@functools.lru_cache(maxsize=16)
def lexicons(config: AlignmentConfig, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
    """Two ``(V,)`` maps from source token to target token (identity on special tokens), and the ``(V,)``
    boolean class of source tokens whose translation a particle precedes (none without particles).

    Drawn on the CPU and cached per (config, device), as the memorisation table is; callers only read them.
    """
    generator = torch.Generator().manual_seed(config.lexicon_seed)
    first = config.first_content
    content = config.vocab_size - first
    maps = []
    for _ in range(2):
        table = torch.arange(config.vocab_size)
        table[first:] = torch.randperm(content, generator=generator) + first
        maps.append(table)
    marked = torch.zeros(config.vocab_size, dtype=torch.bool)
    if config.particle_fraction > 0:
        chosen = torch.randperm(content, generator=generator)[:round(config.particle_fraction * content)] + first
        marked[chosen] = True
    return maps[0].to(device), maps[1].to(device), marked.to(device)


def _order(config: AlignmentConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, S)``: the source position that fills each target slot."""
    device, length = generator.device, config.source_len
    base = torch.arange(length, device=device).expand(batch, length)
    if config.reordering == "identity":
        return base.clone()
    if config.reordering == "reversal":
        return base.flip(1)
    if config.reordering == "permutation":
        return torch.rand(batch, length, generator=generator, device=device).argsort(dim=1)
    swap = torch.rand(batch, length // 2, generator=generator, device=device) < config.swap_prob  # (B, S//2)
    order = base.clone()
    pairs = order[:, : 2 * (length // 2)].view(batch, -1, 2)
    pairs = torch.where(swap.unsqueeze(-1), pairs.flip(-1), pairs)
    order[:, : 2 * (length // 2)] = pairs.reshape(batch, -1)
    return order


def generate(config: AlignmentConfig, num_examples: int, generator: torch.Generator, *, split: str = "train"):
    device, batch, length = generator.device, num_examples, config.source_len
    first, second, marked = lexicons(config, device)
    source = torch.randint(config.first_content, config.vocab_size, (batch, length), generator=generator,
                           device=device)
    fertile = torch.rand(batch, length, generator=generator, device=device) < config.fertility_prob  # per source
    order = _order(config, batch, generator)  # (B, S)
    fertile_in_order = fertile.gather(1, order)
    source_in_order = source.gather(1, order)
    particle = marked[source_in_order]  # (B, S): a particle opens this slot (never without particles)
    words = 1 + fertile_in_order.long() + particle.long()  # target words per slot
    start = words.cumsum(dim=1) - words + particle.long()  # target index of each slot's first translation
    total = words.sum(dim=1)  # (B,)

    width = config.seq_len
    targets = torch.full((batch, width + 1), PAD, dtype=torch.long, device=device)  # one spare column for scatter
    origin = torch.full((batch, width + 1), -1, dtype=torch.long, device=device)
    particle_index = torch.where(particle, start - 1, torch.full_like(start, width))  # spare column if unused
    targets.scatter_(1, particle_index, torch.where(particle, PARTICLE, PAD))  # origin stays -1: no gold link
    targets.scatter_(1, start, first[source_in_order])
    origin.scatter_(1, start, order)
    second_index = torch.where(fertile_in_order, start + 1, torch.full_like(start, width))  # spare column if unused
    targets.scatter_(1, second_index, torch.where(fertile_in_order, second[source_in_order], PAD))
    origin.scatter_(1, second_index, torch.where(fertile_in_order, order, -1))
    targets, origin = targets[:, :width], origin[:, :width]

    positions = torch.arange(width, device=device).unsqueeze(0)
    labels = torch.where(positions < total.unsqueeze(1), targets, IGNORE_INDEX)
    labels = torch.where(positions == total.unsqueeze(1), EOS, labels)
    inputs = torch.cat([torch.full((batch, 1), BOS, device=device), targets[:, :-1]], dim=1)
    inputs = torch.where(positions <= total.unsqueeze(1), inputs, PAD)
    alignment = origin.unsqueeze(-1) == torch.arange(length, device=device)  # (B, T, S), none where origin is -1
    return source, inputs, labels, alignment


def possible_links(config: AlignmentConfig, batch: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
    """``(B, T, S)``: each particle's possible link, to the source position of the word it precedes (the next
    label's sure link); None without ``possible_links``."""
    if not config.possible_links:
        return None
    _, _, labels, sure = batch
    particle = (labels == PARTICLE)[..., :-1, None]  # (B, T-1, 1); a particle is never the last label
    possible = torch.zeros_like(sure)
    possible[:, :-1] = particle & sure[:, 1:]
    return possible


def chance(config: AlignmentConfig) -> float:
    """A uniform pick among the target words (content and particle) for each, and the end token (its place
    is known). With ``W`` target words expected per example, ``(W / (V - 3) + 1) / (W + 1)``.
    """
    words = config.source_len * (1.0 + config.fertility_prob + config.particle_fraction)
    return (words / (config.vocab_size - FIRST_CONTENT) + 1.0) / (words + 1.0)


def _slots(source: torch.Tensor, sure: torch.Tensor, labels: torch.Tensor) -> list[int]:
    """The source position of each target slot, in target order, read off one example's sure links ``(T, S)``
    (a fertile word's two translations share a position; consecutive slots never do)."""
    origins = [int(s) for s, linked in zip(sure.to(torch.uint8).argmax(dim=-1), sure.any(dim=-1)) if linked]
    return [s for i, s in enumerate(origins) if i == 0 or s != origins[i - 1]]


def _bayes_correct(config: AlignmentConfig, source: torch.Tensor, labels: torch.Tensor,
                   sure: torch.Tensor) -> tuple[float, int]:
    """One example's expected correct labels under the Bayes-optimal predictor that knows the source, the
    target prefix and the order of the slots, and its number of labels.

    The predictor tracks the states consistent with the prefix (about to emit
    slot ``k``'s particle ``P``, its first translation ``F``, its second ``G``,
    or the end ``E``) with their probabilities; after an ``F`` the next word is
    ``G`` with probability ``fertility_prob``, else the next slot's first word.
    At each label it scores the largest next-token probability, then keeps the
    states that emit the true label.
    """
    first, second, marked = (t.cpu() for t in lexicons(config))
    words = [int(source[s]) for s in _slots(source, sure, labels)]
    fertility = config.fertility_prob

    def opening(k: int) -> tuple[str, int]:
        if k == len(words):
            return ("E", k)
        return ("P", k) if bool(marked[words[k]]) else ("F", k)

    def emits(kind: str, k: int) -> int:
        table = {"E": EOS, "P": PARTICLE}
        return table[kind] if kind in table else int((first if kind == "F" else second)[words[k]])

    def successors(kind: str, k: int) -> list[tuple[tuple[str, int], float]]:
        if kind == "P":
            return [(("F", k), 1.0)]
        if kind == "F":
            return [(("G", k), fertility), (opening(k + 1), 1.0 - fertility)]
        return [(opening(k + 1), 1.0)] if kind == "G" else []

    belief, correct, count = {opening(0): 1.0}, 0.0, 0
    for label in labels.tolist():
        if label == IGNORE_INDEX:
            break
        mass: dict[int, float] = {}
        for state, p in belief.items():
            mass[emits(*state)] = mass.get(emits(*state), 0.0) + p
        correct, count = correct + max(mass.values()) / sum(mass.values()), count + 1
        after: dict[tuple[str, int], float] = {}
        for state, p in belief.items():
            for successor, q in successors(*state) if emits(*state) == label else []:
                if q > 0:
                    after[successor] = after.get(successor, 0.0) + p * q
        belief = after
    return correct, count


@functools.lru_cache(maxsize=16)
def ceiling(config: AlignmentConfig) -> float:
    """The best token accuracy a model can reach on the task's test set: the Bayes-optimal predictor's
    expected correct labels over the labels (:func:`_bayes_correct`, summed over the test examples).

    Whether a source word yields a second target word is a coin flip
    (``fertility_prob``), so the label after each first translation cannot be
    known: the best guess is the likelier of "a second word" and "the next
    slot", right with probability max(p, 1 - p) unless the two coincide.
    With one error per fertile word the accuracy would be ``1 - S p / L``
    (``L`` the labels per example: 16/19 = 0.842 at 12 words, p = 0.25 and a
    quarter of the words with particles); coincidences lift it a little. Exact
    for the orders the config fixes (identity, reversal, local swaps with
    ``swap_prob`` 0 or 1); for random orders the predictor is told the order,
    so the value is an upper bound. It is the task's registered ceiling, so a
    run learned when it covers half the way from chance to it.
    """
    from synthetic import test_set

    source, _, labels, sure = test_set(config)
    totals = [_bayes_correct(config, *example) for example in zip(source, labels, sure)]
    return sum(c for c, _ in totals) / sum(n for _, n in totals)


register(Task(name="alignment", config=AlignmentConfig, generate=generate, kind="seq2seq", chance=chance,
              possible_links=possible_links, ceiling=ceiling,
              summary="seq2seq translation through a lexicon with a known reordering and gold alignment"))
