"""Embedding extraction with Accelerate: every process encodes its share, the main process stores chunks.

One dataloader over the rows of every missing chunk is prepared by Accelerate (each process takes every
N-th batch) and `gather_for_metrics` puts the batches back in dataset order without the padding
duplicates, so N processes store the same arrays, in the same order, as one; each chunk is written as
soon as its rows have arrived (the resume granularity). DataLoader workers decode, resample and
fix lengths; the feature extractor runs batched on the accelerator, then the model.
"""

import os

import numpy as np
import torch
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from modeling_fusion import inference

from .clips import ClipCollator, ClipDataset

MAX_WORKERS = 8


def default_num_workers():
    """DataLoader workers per process when none are asked for: min(8, CPU cores per local process - 1),
    and 0 (decoding in the main process) with 2 cores or fewer, where a worker only competes with the
    model's own threads (2-core CPU, 384 x 1 s clips: EfficientAT harness/bare 0.57 with 1 worker vs 0.75
    with none, VGGish 0.83 vs 0.99; benchmarks/results/extract_cpu.md). More do not help on a GPU machine
    (H200, 16 cores, 10 s clips: 1.2-1.3k clips/s from 8 workers, 0.95-1.1k from 15;
    benchmarks/results/loader_probe_cuda.md). Processes here: $LOCAL_WORLD_SIZE."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return 0 if per_process <= 2 else min(MAX_WORKERS, per_process - 1)


def compute_features(extractor, waves, samples, device):
    """Right-padded waves [B, N] and their own lengths `samples` [B] (CPU tensors, pinned on a GPU) -> the
    extractor's tensors on `device`, by the package's one embed step (`modeling_fusion.inference.features`):
    this package's extractors compute on `device` from the batch copied there once (each clip a view of it),
    others (transformers') on the CPU, and their tensors are moved."""
    counts = samples.tolist()
    clips = waves if min(counts) == waves.shape[1] else [wave[:count] for wave, count in zip(waves, counts)]
    return dict(inference.features(extractor, clips, extractor.sampling_rate, device))


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
    device = accelerator.device
    if total < len(cache.rows) and accelerator.is_main_process:
        tqdm.write(f"{desc}: resuming, {len(cache.rows) - total} of {len(cache.rows)} clips already in {cache.directory}")
    progress = tqdm(total=total, desc=desc, unit="clip", disable=None if accelerator.is_main_process else True)  # None: no bar off a terminal
    # One loader over the missing chunks' rows (its workers start once); each chunk is written when complete.
    rows = np.concatenate([cache.chunk_rows(chunk) for chunk in todo])
    dataset = ClipDataset(table, rows, view, unit_samples, crop_seed, skip_bad)
    loader = accelerator.prepare_data_loader(torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=ClipCollator(),
        pin_memory=device.type == "cuda"), device_placement=False)  # waves stay on the host until the extractor
    pending, parts = list(todo), []
    for batch in loader:
        features = compute_features(embedder.feature_extractor, batch["waves"], batch["samples"], device)
        with accelerator.autocast():
            embeddings = embedder.embed(features)
        info = {"rows": batch["rows"].to(device), "lengths": batch["lengths"].to(device),
                "ok": batch["ok"].to(device=device, dtype=torch.uint8)}
        gathered = accelerator.gather_for_metrics({**info, **embeddings})
        if accelerator.is_main_process:
            parts.append({key: value.cpu().numpy() for key, value in gathered.items()})
            parts = _write_complete_chunks(cache, pending, parts, keys)
        progress.update(len(gathered["rows"]))
    progress.close()
    accelerator.wait_for_everyone()
    return total


def _write_complete_chunks(cache, pending, parts, keys):
    """Write each chunk of `pending` (in dataset order) whose rows have all arrived in `parts`; returns the rest."""
    if not pending or sum(len(part["rows"]) for part in parts) < len(cache.chunk_rows(pending[0])):
        return parts
    merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    while pending and len(merged["rows"]) >= len(cache.chunk_rows(pending[0])):
        chunk = pending.pop(0)
        count = len(cache.chunk_rows(chunk))
        if not np.array_equal(merged["rows"][:count], cache.chunk_rows(chunk)):
            raise RuntimeError(f"extraction returned rows out of order for cache chunk {chunk}")
        cache.write(chunk, merged["rows"][:count], merged["lengths"][:count], merged["ok"][:count].astype(bool),
                    {key: merged[key][:count] for key in keys})
        merged = {key: value[count:] for key, value in merged.items()}
    return [merged] if len(merged["rows"]) else []
