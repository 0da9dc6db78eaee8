"""Claims read from the recall sweeps: ReLU attention on long sequences (S5) and softmax against linear attention
(D1); the rules every judge follows are in :mod:`paper_figs.claims`."""

from __future__ import annotations


from paper_figs._rows import group
from paper_figs._judging import (DidNotLearn, Evidence, Missing, Untestable, claim, differ, grade, learned,
                                 mean_of, rows, spread)


S5_EFFECT_LENGTH = 512  # the paper: equal at 128 and 256, ReLU better from 512 (+1.15 BLEU at 1024)


@claim("S5",
       "ReLU attention is better on long sequences",
       "ReLUFormer, arXiv 2302.06461",
       "equal at lengths 128/256, better from 512, +1.15 BLEU at 1024",
       "at the longest length where either learned, reluformer above softmax by the seed rule with margin 0.02 (a "
          "tie: partly); neither learned anywhere: inconclusive; a longest length below 512, where the paper "
          "itself finds the two equal, cannot show the effect: a tie or a deficit there is inconclusive")
def judge_s5(ev: Evidence):
    groups = group(rows(ev, "long_context"), "task.seq_len", "model.attention.name")
    lengths = sorted({int(k[0]) for k in groups})
    compared = []
    for length in lengths:
        soft, relu = groups.get((str(length), "softmax")), groups.get((str(length), "reluformer"))
        if not soft or not relu:
            raise Missing(f"softmax and reluformer at length {length}")
        if learned(soft) or learned(relu):
            compared.append((length, relu, soft))
    if not compared:
        raise DidNotLearn("neither softmax nor reluformer learned at any length ("
                          + ", ".join(f"{n}" for n in lengths) + ")")
    length, relu, soft = compared[-1]  # the longest length at which either learned
    order = differ(relu, soft, "test_accuracy", margin=0.02)
    ours = (f"length {length} (longest where either learned): reluformer {spread(relu, 'test_accuracy')}, "
            f"softmax {spread(soft, 'test_accuracy')}")
    if order <= 0 and length < S5_EFFECT_LENGTH:
        raise Untestable(f"{ours}; {'a tie' if order == 0 else 'softmax ahead'} at length {length}, below the "
                         f"{S5_EFFECT_LENGTH} from which the paper finds ReLU ahead")
    return ours, {1: "reproduced", 0: "partly", -1: "not reproduced"}[order]

@claim("D1",
       "softmax beats linear attention on recall; the gap grows with the pairs",
       "Deng, Song, Zhou, arXiv 2310.11685",
       "theory (no number)",
       "where either learned: softmax never below linear and above it somewhere (by the seed rule); the gap "
          "larger at the most pairs than at the fewest")
def judge_d1(ev: Evidence):
    groups = group(rows(ev, "mqar_pairs"), "task.num_kv_pairs", "model.attention.name")
    pairs = sorted({int(k[0]) for k in groups})
    compared, parts = [], []
    for n in pairs:
        soft, lin = groups.get((str(n), "softmax")), groups.get((str(n), "linear"))
        if not soft or not lin:
            raise Missing(f"softmax and linear at {n} pairs")
        gap = mean_of(soft, "test_accuracy") - mean_of(lin, "test_accuracy")
        if learned(soft) or learned(lin):
            compared.append((n, differ(soft, lin, "test_accuracy"), gap))
            parts.append(f"N={n}: {gap:+.3f}")
        else:
            parts.append(f"N={n}: neither learned")
    if not compared:
        raise DidNotLearn("neither softmax nor linear learned at any pair count")
    positive = all(order >= 0 for _, order, _ in compared) and any(order > 0 for _, order, _ in compared)
    grows = compared[-1][2] > compared[0][2] and compared[-1][1] > 0
    return "softmax - linear accuracy " + ", ".join(parts), grade(positive + grows, 2)
