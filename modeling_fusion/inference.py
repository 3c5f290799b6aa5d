"""The one embed step: feature extractor + model on the model's device (remote code: torch only).

    from modeling_fusion.inference import embed, features
    out = embed(model, feature_extractor, [clip_a, clip_b], 16000)    # AudioFusionOutput, batch of 2
    inputs = features(feature_extractor, clips, 16000, "cuda")         # BatchFeature, tensors on cuda

The audio-embedding pipeline, `chunking.embed_long_clip`, the HEAR / X-ARES modules, fusion-embed and
fusion-eval all go through here, so they give the same numbers for the same clip on the same device.
An extractor with `torch_front_end = True` (every extractor of this package) computes the whole batch with
its batched torch front end on the device (`device=`); any other (transformers' wav2vec2, Whisper, CLAP,
AST extractors) runs its own numpy path on the host and its tensors are moved to the device. The numpy
front ends of this package stay as the references of tests/test_frontends_torch.py (1e-6 to 1e-3 dB).
"""

import torch


def features(feature_extractor, clips, sampling_rate, device, **extractor_kwargs):
    """Clips -> the extractor's `BatchFeature` (return_tensors="pt") with every tensor on `device`.

    clips: a list of 1-D float clips (numpy or torch, any device) or a [B, N] batch of equal-length clips,
        mono, at `sampling_rate` Hz (the extractor raises ValueError for another rate, or a clip too short).
    device: a torch device (or its name). With the torch front end, torch clips are moved there first
        (a [B, N] tensor in one copy) and the features are computed there; otherwise they are computed on
        the host from numpy and moved.
    extractor_kwargs: passed to the extractor (e.g. computation_dtype=torch.float64).
    """
    device = torch.device(device)
    if getattr(feature_extractor, "torch_front_end", False):
        if torch.is_tensor(clips):
            clips = clips.to(device, non_blocking=True)
        elif any(torch.is_tensor(clip) for clip in clips):
            clips = [clip.to(device, non_blocking=True) if torch.is_tensor(clip) else clip for clip in clips]
        extractor_kwargs["device"] = device
    else:
        clips = [clip.detach().cpu().numpy() if torch.is_tensor(clip) else clip for clip in clips]
    inputs = feature_extractor(clips, sampling_rate=sampling_rate, return_tensors="pt", **extractor_kwargs)
    return inputs.to(device, non_blocking=True)


def embed(model, feature_extractor, clips, sampling_rate, output_hidden_states=False, output_plain_embedding=False,
          **extractor_kwargs):
    """Clips -> the base model's `AudioFusionOutput` (batch first), features on the model's device, no grad.

    model: a base model of this package (`AutoModel`), any device and dtype; clips and sampling_rate as for
    `features`. output_hidden_states / output_plain_embedding: passed to the model's forward.
    """
    inputs = features(feature_extractor, clips, sampling_rate, model.device, **extractor_kwargs)
    with torch.no_grad():
        return model(**inputs, output_hidden_states=output_hidden_states,
                     output_plain_embedding=output_plain_embedding, return_dict=True)
