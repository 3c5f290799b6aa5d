"""Embedding extraction with Accelerate: every process encodes its share, the main process stores chunks.

The dataloader of each missing chunk is prepared by Accelerate (each process takes every N-th batch)
and `gather_for_metrics` puts the batches back in dataset order without the padding duplicates, so
N processes store the same arrays, in the same order, as one.
"""

import numpy as np
import torch
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from .audio import ClipCollator, ClipDataset


def extract(accelerator, embedder, table, cache, view, unit_samples, crop_seed, batch_size=32, num_workers=0,
            skip_bad=False, desc="extract"):
    """Fill `cache` with every representation of `embedder` for its rows; returns the clips computed."""
    keys = [rep.key for rep in embedder.representations]
    todo = [None]
    if accelerator.is_main_process:
        cache.create()
        todo = [cache.missing(keys)]
    todo = broadcast_object_list(todo)[0]
    total = sum(len(cache.chunk_rows(chunk)) for chunk in todo)
    if not total:
        return 0
    collate = ClipCollator(embedder.feature_extractor)
    progress = tqdm(total=total, desc=desc, unit="clip", disable=not accelerator.is_main_process)
    for chunk in todo:
        dataset = ClipDataset(table, cache.chunk_rows(chunk), view, unit_samples, crop_seed, skip_bad)
        loader = accelerator.prepare(torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate))
        parts = []
        for batch in loader:
            with accelerator.autocast():
                embeddings = embedder.embed(batch["features"])
            info = {"rows": batch["rows"], "lengths": batch["lengths"], "ok": batch["ok"].to(torch.uint8)}
            gathered = accelerator.gather_for_metrics({**info, **embeddings})
            if accelerator.is_main_process:
                parts.append({key: value.cpu().numpy() for key, value in gathered.items()})
            progress.update(len(gathered["rows"]))
        if accelerator.is_main_process:
            merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
            cache.write(chunk, merged["rows"], merged["lengths"], merged["ok"].astype(bool),
                        {key: merged[key] for key in keys})
    progress.close()
    accelerator.wait_for_everyone()
    return total
