"""Embedding extraction with Accelerate: every process encodes its share, the main process stores chunks.

One dataloader over the rows of every missing chunk is prepared by Accelerate (each process takes every
N-th batch) and `gather_for_metrics` puts the batches back in dataset order without the padding
duplicates, so N processes store the same arrays, in the same order, as one; each chunk is written as
soon as its rows have arrived (the resume granularity). DataLoader workers decode, resample, fix
lengths and check every clip's values (`clips.read_clip`); the feature extractor runs batched on the
accelerator, then the model.

The loop does not wait for the device per batch: the extractors skip their value checks
(`values_checked`: the workers made them), on CUDA batch k+1 is copied to the device on a side stream
while batch k computes (from pinned memory), and the embeddings come back with non-blocking copies into
pinned host memory, waited for once per cache chunk, when the chunk is written.
"""

import os

import numpy as np
import torch
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from modeling_fusion import inference
from modeling_fusion.audio_input import values_checked

from .clips import ClipDataset, ClipStream, batch_to_float, keep_batch
from .store import prepared_store

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
            skip_bad=False, desc="extract", audio_store=None):
    """Fill `cache` with every representation of `embedder` for its rows; returns the clips computed.
    audio_store: a folder for the prepared audio (`store.AudioStore`: the clips are decoded into it once, then
    read from it), or None to decode on every pass."""
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
    loader = _loader(accelerator, table, rows, view, unit_samples, crop_seed, batch_size, num_workers, skip_bad, desc,
                     audio_store)
    pending, parts = list(todo), []
    for batch in _uploaded(loader, device):
        with values_checked():  # the workers checked every clip: no host sync in the extractor
            features = compute_features(embedder.feature_extractor, batch_to_float(batch["waves"]), batch["samples"],
                                        device)
        with accelerator.autocast():
            embeddings = embedder.embed(features)
        info = {"rows": batch["rows"].to(device, non_blocking=True),
                "lengths": batch["lengths"].to(device, non_blocking=True),
                "ok": batch["ok"].to(device=device, dtype=torch.uint8, non_blocking=True)}
        gathered = accelerator.gather_for_metrics({**info, **embeddings})
        if accelerator.is_main_process:  # into pinned host memory on CUDA; waited for when a chunk is written
            parts.append({key: value.to("cpu", non_blocking=True) for key, value in gathered.items()})
            parts = _write_complete_chunks(cache, pending, parts, keys, device)
        progress.update(len(gathered["rows"]))
    progress.close()
    accelerator.wait_for_everyone()
    return total


def _loader(accelerator, table, rows, view, unit, crop_seed, batch_size, num_workers, skip_bad, desc, audio_store):
    """Batches of `rows` in order: from the prepared-audio store or decoded, each process taking its share
    (Accelerate); a streamed table is read in stream order by one worker, on one process."""
    pin = accelerator.device.type == "cuda"
    if table.streamed:
        if accelerator.num_processes > 1:
            raise ValueError(f"{table.source}: --streaming reads the stream in order on one process; run it without "
                             "accelerate launch, or without --streaming")
        return torch.utils.data.DataLoader(ClipStream(table, rows, view, unit, crop_seed, skip_bad, batch_size),
                                           batch_size=None, num_workers=min(1, num_workers), collate_fn=keep_batch,
                                           pin_memory=pin)
    store = prepared_store(accelerator, table, rows, audio_store, num_workers, desc)
    return accelerator.prepare_data_loader(torch.utils.data.DataLoader(
        ClipDataset(table, rows, view, unit, crop_seed, skip_bad, store), batch_size=batch_size,
        num_workers=num_workers, collate_fn=keep_batch, pin_memory=pin),
        device_placement=False)  # waves stay on the host until the extractor


def _uploaded(loader, device):
    """The loader's batches; on CUDA with their waves already on `device`: batch k+1's copy is issued on a side
    stream (from pinned memory) before batch k is handed out, so it overlaps batch k's compute."""
    if device.type != "cuda":
        yield from loader
        return
    side, ahead = torch.cuda.Stream(device), None
    for batch in loader:
        with torch.cuda.stream(side):
            waves = batch["waves"].to(device, non_blocking=True)
        uploaded = ({**batch, "waves": waves}, side.record_event())
        if ahead is not None:
            yield _ready(*ahead)
        ahead = uploaded
    if ahead is not None:
        yield _ready(*ahead)


def _ready(batch, copied):
    """The compute stream waits (on the device, not the host) for the batch's copy, and owns its memory."""
    stream = torch.cuda.current_stream(batch["waves"].device)
    stream.wait_event(copied)
    batch["waves"].record_stream(stream)
    return batch


def _write_complete_chunks(cache, pending, parts, keys, device):
    """Write each chunk of `pending` (in dataset order) whose rows have all arrived in `parts` (host tensors,
    possibly still being copied from `device`); returns the rest."""
    if not pending or sum(len(part["rows"]) for part in parts) < len(cache.chunk_rows(pending[0])):
        return parts
    if device.type == "cuda":  # the non-blocking copies into `parts`: one wait per chunk
        torch.cuda.current_stream(device).synchronize()
    merged = {key: np.concatenate([part[key].numpy() for part in parts]) for key in parts[0]}
    while pending and len(merged["rows"]) >= len(cache.chunk_rows(pending[0])):
        chunk = pending.pop(0)
        count = len(cache.chunk_rows(chunk))
        if not np.array_equal(merged["rows"][:count], cache.chunk_rows(chunk)):
            raise RuntimeError(f"extraction returned rows out of order for cache chunk {chunk}")
        cache.write(chunk, merged["rows"][:count], merged["lengths"][:count], merged["ok"][:count].astype(bool),
                    {key: merged[key][:count] for key in keys})
        merged = {key: value[count:] for key, value in merged.items()}
    return [{key: torch.from_numpy(value) for key, value in merged.items()}] if len(merged["rows"]) else []
