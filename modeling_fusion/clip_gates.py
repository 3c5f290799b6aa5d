"""Exact chunked long clips for models with clip-wide channel gates (EfficientAT's squeeze-excitation).

A squeeze-excitation module multiplies its input [B, C, F, T] by a per-channel gate computed from the input's
mean over frequency and time, i.e. over the whole clip: a chunk on its own sees only its own mean. The whole-clip
gates are found one module at a time (`whole_clip_gates`): pass k runs every chunk up to gate module k, with
modules 1..k-1 already fixed to their whole-clip gates, adds up module k's input over the frames the chunk owns
(float64 running sum; the chunk's receptive-field context is not counted) and stops the forward there; the mean
over the whole clip gives module k's gate exactly as the whole-clip pass computes it. Once every gate that the
forward reaches is fixed, the chunks' frames equal the whole-clip pass's (the chunking context covers the
receptive field): float rounding only (float64 vs float32 mean, convolutions on other sizes).

Cost: one pass per gate module, each ending at that module, plus the final pass; each chunk's features are computed
once (`chunking._FeatureCache`). EfficientAT-Fusion#12#14 reaches six (features.4-6, 11-13; eight with
output_hidden_states): on 240 s of real audio the mn04 chunks took 1.6x (60 s chunks) and 2.2x (120 s) the
whole-clip pass's time (one thread, loaded machine; `benchmarks/results/long_clips_differences_real.md` has
the 3- and 20-minute runs). Memory: one chunk's activations plus every chunk's log-mel.

A gate module is any module with a `fixed_gate` attribute (None: compute the gate) and a `gate(mean [B, C])`
method, whose input is [B, C, ..., T] with time last (EfficientAT's layout). Remote code: imports only torch.
"""

from contextlib import contextmanager

import torch


class _Reached(Exception):
    """Raised by the hook on the module being measured: the rest of the forward is not needed."""


def gate_modules(model):
    """The clip-wide gate modules of `model`, in forward order (registration order)."""
    return [m for m in model.modules() if hasattr(m, "fixed_gate") and callable(getattr(m, "gate", None))]


def _stride(input_frames, stage_frames, unit_frames):
    """Input frames per frame of a stage with `stage_frames` of a chunk's `input_frames` (a divisor of the
    chunk grid's `unit_frames`, with ceil(input_frames / stride) == stage_frames)."""
    candidates = [r for r in range(1, unit_frames + 1) if unit_frames % r == 0 and -(-input_frames // r) == stage_frames]
    if len(candidates) != 1:
        raise RuntimeError(f"a gate module's input has {stage_frames} frames for {input_frames} input frames: no single "
                           f"stride dividing the chunk unit of {unit_frames} frames fits")
    return candidates[0]


@contextmanager
def whole_clip_gates(model, chunks, run, unit_frames):
    """Within the block, every gate module that the forward reaches uses its whole-clip gate.

    model: a base model (in eval mode); chunks: [(first unit kept, end unit kept, first unit run, is the last
        chunk)], as `chunking.chunk_plan` gives them; run(index): the forward of chunk `index` (its result is not
        used here); unit_frames: input frames (the model's `input_values` time axis) per chunk unit.
    Raises RuntimeError when the chunks' owned frames do not add up to the whole clip's frame count.
    The gates are reset to None on leaving, also on error.
    """
    modules = gate_modules(model)
    state = {}

    def record_input(_module, args, kwargs):
        values = kwargs.get("input_values", args[0] if args else None)
        state["input_frames"] = values.shape[1]

    def measure(_module, args):
        x = args[0]
        first, end, run_first, last = chunks[state["chunk"]]
        input_frames = state["input_frames"]
        stride = _stride(input_frames, x.shape[-1], unit_frames)
        per_unit = unit_frames // stride
        owned = x[..., (first - run_first) * per_unit: None if last else (end - run_first) * per_unit]
        total = owned.double().sum(dim=tuple(range(2, x.ndim)))
        state["total"] = total if "total" not in state else state["total"] + total
        state["frames"] = state.get("frames", 0) + owned.shape[-1]
        state["per_frame"], state["dtype"] = owned[0, 0, ..., 0].numel(), x.dtype  # positions per frame (frequency)
        if last:  # the whole clip's frames at this stage: the last chunk's plus those before its start
            whole = -(-(input_frames + run_first * unit_frames) // stride)
            if state["frames"] != whole:
                raise RuntimeError(f"chunks own {state['frames']} frames of a gate module's input, the whole clip "
                                   f"has {whole}: the chunk plan does not tile the clip")
        raise _Reached

    handles = [model.register_forward_pre_hook(record_input, with_kwargs=True)]
    try:
        for module in modules:
            for key in ("total", "frames"):
                state.pop(key, None)
            hook = module.register_forward_pre_hook(measure)
            try:
                for index in range(len(chunks)):
                    state["chunk"] = index
                    try:
                        run(index)
                    except _Reached:
                        continue
                    break  # the forward never reaches this module (nor any later one): every needed gate is fixed
            finally:
                hook.remove()
            if "total" not in state:
                break
            mean = state["total"] / (state["frames"] * state["per_frame"])  # [1, C], float64
            with torch.no_grad():
                module.fixed_gate = module.gate(mean.to(state["dtype"]))
        handles.pop().remove()
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module in modules:
            module.fixed_gate = None
