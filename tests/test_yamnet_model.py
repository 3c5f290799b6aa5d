"""YAMNet-Fusion with the real weights: front end against YAMNet's recipe, patch pooling of the scores,
export.py's sanity clips, fusion frames, mixed lengths, converter errors, and the folder loading with
trust_remote_code in a clean process (Auto classes, "audio-embedding" and "audio-classification").

Tolerances: the front end is compared with an independent float64 numpy implementation of YAMNet's
`features.py` (VGGish's reference mel matrix): ours is float64 up to the magnitude and float32 after,
so 1e-5 on log values (as the VGGish front-end test, which measured 4e-7). Same-code comparisons
(batched vs single clip, clean process vs this one, model vs a manual recomputation) use 1e-5.
"""

import json
import math

import numpy as np
import pytest
import torch
from vggish_reference import mel_features
from yamnet_testing import RATE, folder, read_clip  # noqa: F401  (fixture)

from conftest import run_clean_process
from modeling_fusion import inference
from modeling_fusion.convert import main as convert_main
from modeling_fusion.feature_extraction_yamnet import YAMNetFeatureExtractor
from modeling_fusion.modeling_yamnet import YAMNetForAudioClassification

ATOL = 1e-5
SPEECH = ("speech_commands_v2_test", "audio", "down", "022cd682_nohash_0.flac")  # 1 s
STREET = ("urbansound8k_3folds", "audio", "fold1", "101415-3-0-2.ogg")  # 4 s


def reference_log_mel(audio):
    """YAMNet's `pad_waveform` + `waveform_to_log_mel_spectrogram_patches` in float64 numpy -> (log-mel [T, 64], patches)."""
    minimum, hop = 15600, 7680
    padding = max(0, minimum - len(audio))
    extra = max(len(audio), minimum) - minimum
    padding += hop * math.ceil(extra / hop) - extra
    waveform = np.pad(audio.astype(np.float64), (0, padding))
    frames = np.lib.stride_tricks.sliding_window_view(waveform, 400)[::160]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    magnitude = np.abs(np.fft.rfft(frames * window, 512))
    log_mel = np.log(magnitude @ mel_features.spectrogram_to_mel_matrix(64, 257, RATE, 125.0, 7500.0) + 0.001)
    patches = np.lib.stride_tricks.sliding_window_view(log_mel, 96, axis=0)[::48].transpose(0, 2, 1)
    return log_mel, patches


@pytest.fixture(scope="module")
def model(folder):  # noqa: F811
    return YAMNetForAudioClassification.from_pretrained(folder).eval()


def test_front_end_matches_yamnets_recipe():
    rng = np.random.default_rng(5)
    clips = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (4000, 15600, 15601, 23280, 23281, 48000)]
    clips.append(read_clip(STREET))
    features = YAMNetFeatureExtractor()(clips, sampling_rate=RATE, return_tensors="np")
    counts = [1, 1, 2, 2, 3, 6, 8]  # 1 + ceil(max(N - 15600, 0) / 7680)
    assert features["attention_mask"].sum(axis=1).tolist() == counts
    for row, (clip, count) in enumerate(zip(clips, counts)):
        _, patches = reference_log_mel(clip)
        assert len(patches) == count
        np.testing.assert_allclose(features["input_values"][row, :count], patches, rtol=0, atol=ATOL)
        assert np.all(features["input_values"][row, count:] == 0.0)
    # the batched torch path (`device=`, float32 FFT): measured 8.3e-6 here; 1e-3 as for VGGish's (test_frontends_torch)
    on_device = YAMNetFeatureExtractor()(clips, sampling_rate=RATE, return_tensors="pt", device="cpu")
    np.testing.assert_allclose(on_device["input_values"].numpy(), features["input_values"], rtol=0, atol=1e-3)
    assert on_device["attention_mask"].tolist() == features["attention_mask"].tolist()


@torch.no_grad()
def test_clip_scores_are_the_mean_of_yamnets_patch_scores(model):
    """A 4 s clip's 8 patches start every 7680 samples: each one run alone, the mean of their scores
    is the clip's score (YAMNet's inference.py pooling); logits are log(p / (1 - p)) of it."""
    extractor = YAMNetFeatureExtractor()
    audio = read_clip(STREET)
    clip = torch.sigmoid(model(**extractor(audio, sampling_rate=RATE, return_tensors="pt")).logits[0])
    windows = [audio[start : start + 15600] for start in range(0, 8 * 7680, 7680)]
    single = torch.sigmoid(model(**extractor(windows, sampling_rate=RATE, return_tensors="pt")).logits)
    assert single.shape == (8, 521)
    torch.testing.assert_close(clip, single.mean(dim=0), rtol=0, atol=ATOL)
    top3 = [model.config.id2label[int(i)] for i in clip.argsort(descending=True)[:3]]
    assert "Dog" in top3, top3  # UrbanSound8K class 3, dog_bark


@torch.no_grad()
def test_export_py_sanity_clips(model):
    """tensorflow/models yamnet/export.py `check_model`: 3 s of zeros, uniform noise (seed 51773) and
    a 440 Hz sine must have "Silence", "White noise" and "Sine wave" among the top 10 clip scores."""
    np.random.seed(51773)
    clips = {"Silence": np.zeros(3 * RATE, np.float32),
             "White noise": np.random.uniform(-1.0, 1.0, 3 * RATE).astype(np.float32),
             "Sine wave": np.sin(2 * np.pi * 440 * np.arange(0, 3, 1 / RATE), dtype=np.float32)}
    features = YAMNetFeatureExtractor()(list(clips.values()), sampling_rate=RATE, return_tensors="pt")
    scores = torch.sigmoid(model(**features).logits)
    for row, expected in enumerate(clips):
        top10 = [model.config.id2label[int(i)] for i in scores[row].argsort(descending=True)[:10]]
        assert expected in top10, (expected, top10)
    assert model.config.id2label[int(scores[0].argmax())] == "Silence"


@torch.no_grad()
def test_fusion_frames_come_from_the_whole_log_mel(model):
    base = model.yamnet
    audio = read_clip(STREET)
    features = YAMNetFeatureExtractor()(audio, sampling_rate=RATE, return_tensors="pt")
    log_mel, _ = reference_log_mel(audio)  # 432 frames: 8 patches, 48 (8 + 1)
    stitched = base.stitch(features["input_values"])
    np.testing.assert_allclose(stitched[0].numpy(), log_mel, rtol=0, atol=ATOL)
    out = base(**features, output_hidden_states=True)
    assert [h.shape[-1] for h in out.hidden_states] == [64, 1024] + [2048] * 13 == base.config.layer_sizes
    assert all(h.shape[1] == math.ceil(432 / 32) for h in out.hidden_states)  # 320 ms frames
    maps = base.feature_maps(stitched)
    layer14 = torch.nn.functional.max_pool2d(maps[13], (1, 1)).permute(0, 2, 1, 3).flatten(2)  # stride 32 already
    torch.testing.assert_close(out.hidden_states[14], layer14, rtol=0, atol=0)
    fused = torch.cat([out.hidden_states[layer] for layer in base.config.fusion_layers], dim=-1)
    torch.testing.assert_close(out.last_hidden_state, fused, rtol=0, atol=0)
    torch.testing.assert_close(out.pooler_output, fused.mean(dim=1) + fused.amax(dim=1))


@torch.no_grad()
def test_mixed_length_batch_equals_single_clips(model):
    rng = np.random.default_rng(2)
    clips = [rng.uniform(-0.3, 0.3, 4800).astype(np.float32), read_clip(SPEECH), read_clip(STREET)]
    extractor = YAMNetFeatureExtractor()
    batch = extractor(clips, sampling_rate=RATE, return_tensors="pt")
    assert batch["attention_mask"].sum(dim=1).tolist() == [1, 2, 8]
    out = model.yamnet(**batch, output_hidden_states=True, output_plain_embedding=True)
    logits = model(**batch).logits
    assert out.frame_mask.sum(dim=1).tolist() == [3, 5, 14]  # ceil(48 (E + 1) / 32)
    for row, clip in enumerate(clips):
        single_inputs = extractor(clip, sampling_rate=RATE, return_tensors="pt")
        single = model.yamnet(**single_inputs, output_hidden_states=True, output_plain_embedding=True)
        frames = single.last_hidden_state.shape[1]
        torch.testing.assert_close(out.last_hidden_state[row, :frames], single.last_hidden_state[0], rtol=0, atol=ATOL)
        for name in ("pooler_output", "plain_embedding"):
            torch.testing.assert_close(getattr(out, name)[row], getattr(single, name)[0], rtol=0, atol=ATOL)
        torch.testing.assert_close(out.pooled_hidden_states[7][row], single.pooled_hidden_states[7][0], rtol=0, atol=ATOL)
        torch.testing.assert_close(logits[row], model(**single_inputs).logits[0], rtol=0, atol=1e-4)


def test_converter_refuses_other_files(tmp_path):
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"\x00" * 64)
    with pytest.raises(SystemExit, match="not a TFLite flatbuffer"):
        convert_main(["yamnet", "--checkpoint", str(fake), "--output", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="checkpoint not found"):
        convert_main(["yamnet", "--checkpoint", str(tmp_path / "missing.tflite"), "--output", str(tmp_path / "out")])


def test_clean_process_loads_folder_and_pipelines(folder, model, tmp_path):  # noqa: F811
    clips = {"speech": read_clip(SPEECH), "street": read_clip(STREET)}
    waves = tmp_path / "waves.npz"
    np.savez(waves, **clips)
    script = f"""
    import json
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification, pipeline

    folder = {str(folder)!r}
    clips = dict(np.load({str(waves)!r}))
    objects = [AutoConfig.from_pretrained(folder, trust_remote_code=True),
               AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True),
               AutoModel.from_pretrained(folder, trust_remote_code=True).eval(),
               AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True).eval()]
    extractor, base, head = objects[1:]
    inputs = extractor([clips["speech"], clips["street"]], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        out = base(**inputs, output_plain_embedding=True)
        logits = head(**inputs).logits
    embed = pipeline("audio-embedding", model=folder, trust_remote_code=True)
    classify = pipeline("audio-classification", model=folder, trust_remote_code=True)
    print(json.dumps({{
        "classes": [type(o).__module__.split(".")[0] + ":" + type(o).__name__ for o in objects],
        "pooler": out.pooler_output.tolist(), "plain": out.plain_embedding.tolist(), "logits": logits.tolist(),
        "piped": embed({{"array": clips["street"], "sampling_rate": 16000}}, per_layer=True)["layers"][14].tolist(),
        "top3": classify(clips["street"], top_k=3),
    }}))
    """
    result = run_clean_process(script, tmp_path)
    assert result["classes"] == ["transformers_modules:YAMNetFusionConfig",
                                 "transformers_modules:YAMNetFeatureExtractor",
                                 "transformers_modules:YAMNetFusionModel",
                                 "transformers_modules:YAMNetForAudioClassification"]
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_yamnet.YAMNetFusionModel" and len(config["id2label"]) == 521
    inputs = YAMNetFeatureExtractor()(list(clips.values()), sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        out = model.yamnet(**inputs, output_plain_embedding=True, output_hidden_states=True)
        scores = torch.sigmoid(model(**inputs).logits)
    np.testing.assert_allclose(result["pooler"], out.pooler_output.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(result["plain"], out.plain_embedding.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(result["logits"], model(**inputs).logits.detach().numpy(), rtol=0, atol=1e-4)
    step = inference.embed(model.yamnet, YAMNetFeatureExtractor(), [clips["street"]], RATE, output_hidden_states=True)
    np.testing.assert_allclose(result["piped"], step.pooled_hidden_states[14][0].numpy(), rtol=0, atol=ATOL)
    top3 = scores[1].argsort(descending=True)[:3]
    assert [p["label"] for p in result["top3"]] == [model.config.id2label[int(i)] for i in top3]
    np.testing.assert_allclose([p["score"] for p in result["top3"]], scores[1, top3].numpy(), rtol=0, atol=ATOL)
