"""Fixed task tables (the memorisation facts, the alignment lexicons) are built once per device, not per batch.

A training step on a GPU should not rebuild a table on the host and wait on its copy: after the first
batch, drawing more must neither build the table again nor move any tensor between devices.
"""

from __future__ import annotations

import pytest
import torch

import synthetic
from synthetic import alignment, memorisation

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
TABLES = {"memorisation": memorisation.fact_table, "alignment": alignment.lexicons}
CONFIGS = {
    "memorisation": dict(vocab_size=64, num_facts=30, key_tokens=2, seq_len=24, map_seed=3),
    "alignment": dict(vocab_size=20, source_len=7, reordering="reversal", fertility_prob=0.3),
}
# tensor_hash of four batches of 17 (seeds 124 and 127), drawn before the tables were cached
PINNED = {"memorisation": (124, "dadf71d1eca876fe"), "alignment": (127, "9fff954287c27eba")}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", TABLES)
def test_tables_are_built_once_and_later_batches_copy_nothing(name, device, monkeypatch):
    config, table = synthetic.make_config(name, **CONFIGS[name]), TABLES[name]
    table.cache_clear()
    generator = torch.Generator(device=device).manual_seed(0)
    synthetic.generate(config, 8, generator)
    copies = []
    tensor_to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: copies.append(a) or tensor_to(self, *a, **k))
    batches = [synthetic.generate(config, 8, generator, split=split) for split in ("train", "test", "train")]
    assert copies == [], "a later batch moved a tensor between devices"
    assert table.cache_info().misses == 1 and table.cache_info().hits == 3
    assert all(t.device == generator.device for batch in batches for t in batch)
    assert all(t.device == generator.device for t in table(config, generator.device))


@pytest.mark.parametrize("name", TABLES)
def test_batches_from_cached_tables_equal_those_drawn_before_caching(name):
    config = synthetic.make_config(name, **CONFIGS[name])
    seed, pinned = PINNED[name]
    for _ in range(2):  # the first pass builds the table, the second reads it from the cache
        generator = torch.Generator().manual_seed(seed)
        batches = [synthetic.generate(config, 17, generator) for _ in range(4)]
        assert synthetic.tensor_hash(*[t for batch in batches for t in batch])[:16] == pinned
