"""One input path: every entry point gives the same embedding for the same audio, or a clear error.

Table-driven over entry point (the "audio-embedding" pipeline, fusion-embed, feature extractor + model,
fusion-eval's dataset path) x input kind (path / bytes / array / dict / datasets row, mono and stereo
in [C, N] and [N, C], float and int16 PCM, native and other rates) on all four backbones (tiny random
weights), with real clips: an 8 kHz FSDD FLAC, a 16 kHz UrbanSound8K Ogg and a 44.1 kHz stereo WAV.

The reference is computed without `load_audio`: soundfile decode, channel mean, soxr HQ to the model
rate, then the package's one embed step (`inference.embed`: feature extractor + model). Every entry point
shares decode, resampler and that step, so for the same samples they give the same embedding bit for bit
(fusion-embed's padded batches included): asserted exactly. Two input kinds hand over other samples, which
differ by float32 rounding, within 1e-4 relative (the issue's bar): a bare torchcodec AudioDecoder (FFmpeg,
not libsndfile, decodes the Ogg file: up to 4e-5 on EfficientAT) and a stereo array resampled here before
the channel mean, not after (up to 9e-6).
"""

import io
import json
import logging
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from ast_reference import TINY as TINY_AST
from datasets import Audio, Dataset
from torchcodec.decoders import AudioDecoder
from efficientat_testing import random_model as random_efficientat
from eval_testing import TINY_CNN14, tiny_cnn14_folder

from conftest import shared_path
from modeling_fusion import inference
from modeling_fusion.cli import embed
from modeling_fusion.audio_input import load_audio, resampler_tag
from modeling_fusion.configuration_ast import AstFusionConfig
from modeling_fusion.configuration_cnn14 import Cnn14FusionConfig
from modeling_fusion.configuration_vggish import VGGishFusionConfig
from modeling_fusion.feature_extraction_ast import AstFusionFeatureExtractor
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.feature_extraction_efficientat import EfficientATFeatureExtractor
from modeling_fusion.feature_extraction_vggish import VGGishFeatureExtractor
from modeling_fusion.cli.model_source import check_model_source, looks_local
from modeling_fusion.modeling_ast import AstFusionModel
from modeling_fusion.modeling_cnn14 import Cnn14FusionModel
from modeling_fusion.modeling_vggish import VGGishFusionModel
from modeling_fusion.pipeline_audio_embedding import AudioEmbeddingPipeline

TOLERANCE = 1e-4  # relative L2 difference of clip embeddings; see the module docstring
# input kinds whose samples are not the reference's (other decoder; resampled before the channel mean)
ROUNDED_KINDS = ("torchcodec AudioDecoder", "bare array at model rate [N, C]", "bare array at model rate [C, N]",
                 "bare torch at model rate [C, N]")
BACKBONES = ("cnn14", "efficientat", "ast", "vggish")


def _vggish():
    """Full-size VGGish (fixed architecture) with fast random weights: default init of 72 M params is slow."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        from transformers.modeling_utils import no_init_weights
    with no_init_weights():
        model = VGGishFusionModel(VGGishFusionConfig())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            fan_in = parameter[0].numel() if parameter.ndim > 1 else 100
            parameter.normal_(0, fan_in ** -0.5, generator=generator)
    return model.eval()


@pytest.fixture(scope="module")
def backbones():
    torch.manual_seed(0)
    efficientat = random_efficientat()
    return {
        "cnn14": (Cnn14FusionModel(Cnn14FusionConfig(**TINY_CNN14)).eval(), Cnn14FeatureExtractor()),
        "efficientat": (efficientat.base_model.eval(), EfficientATFeatureExtractor()),
        "ast": (AstFusionModel(AstFusionConfig(ast_config=TINY_AST, fusion_layers=[1, 3])).eval(),
                AstFusionFeatureExtractor()),
        "vggish": (_vggish(), VGGishFeatureExtractor()),
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """name -> path: real 8 kHz FLAC and 16 kHz Ogg clips, and a 44.1 kHz stereo int16 WAV made here."""
    folder = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    t = np.arange(int(1.1 * 44100)) / 44100
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
    right = 0.2 * np.sin(2 * np.pi * 1250 * t) + 0.05 * rng.standard_normal(len(t))
    sf.write(folder / "stereo.wav", np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    return {
        "fsdd_8k_flac": shared_path("data", "fsdd", "audio", "0_george_10.flac"),
        "us8k_16k_ogg": shared_path("data", "urbansound8k_3folds", "audio", "fold1", "101415-3-0-2.ogg"),
        "stereo_44k_wav": folder / "stereo.wav",
    }


def reference_wave(path, rate):
    """soundfile decode -> channel mean -> soxr HQ: the documented rule, without load_audio."""
    samples, source_rate = sf.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1, dtype=np.float64).astype(np.float32)
    return soxr.resample(mono, source_rate, rate, quality="HQ") if source_rate != rate else mono


def model_embedding(model, extractor, wave):
    """The package's one embed step (`inference.embed`: the torch front end, on the model's device)."""
    return inference.embed(model, extractor, [wave], extractor.sampling_rate).pooler_output[0].float().numpy()


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def input_kinds(path, rate):
    """Input kind -> the same audio handed over that way (source rate kept unless the kind is a bare array)."""
    samples, source_rate = sf.read(path, dtype="float32", always_2d=True)  # [N, C]
    mono = samples.shape[1] == 1
    at_rate = soxr.resample(samples, source_rate, rate, quality="HQ") if source_rate != rate else samples
    kinds = {
        "path str": str(path),
        "path Path": path,
        "bytes": path.read_bytes(),
        "dict array [N, C]": {"array": samples[:, 0] if mono else samples, "sampling_rate": source_rate},
        "dict raw [C, N]": {"raw": samples.T, "sampling_rate": source_rate},
        "dict torch [C, N]": {"array": torch.from_numpy(samples.T.copy()), "sampling_rate": source_rate},
        "bare array at model rate [N, C]": at_rate[:, 0] if mono else at_rate,
        "bare array at model rate [C, N]": at_rate.T.copy(),
        "bare torch at model rate [C, N]": torch.from_numpy(at_rate.T.copy()),
        "datasets row Audio(decode=False)":
            Dataset.from_dict({"audio": [str(path)]}).cast_column("audio", Audio(decode=False))[0]["audio"],
        "datasets row bytes": {"bytes": path.read_bytes(), "path": None},
        "datasets row AudioDecoder":
            Dataset.from_dict({"audio": [str(path)]}).cast_column("audio", Audio())[0]["audio"],
        "datasets row AudioDecoder, FFmpeg-resampled column":  # the file is read again, at its own rate
            Dataset.from_dict({"audio": [str(path)]}).cast_column("audio", Audio(sampling_rate=22050))[0]["audio"],
        "torchcodec AudioDecoder": AudioDecoder(str(path)),
    }
    if sf.info(str(path)).subtype == "PCM_16":  # lossless int16 source: the int16 samples are the file itself
        kinds["dict int16 [N, C]"] = {"array": sf.read(path, dtype="int16", always_2d=True)[0],
                                      "sampling_rate": source_rate}
    return kinds


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_entry_point_and_input_kind_gives_one_embedding(backbone, backbones, sources, tmp_path):
    model, extractor = backbones[backbone]
    rate = extractor.sampling_rate
    pipe = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)
    names = list(sources)
    expected = {name: model_embedding(model, extractor, reference_wave(sources[name], rate)) for name in names}
    got = {}
    for name in names:
        for kind, audio in input_kinds(sources[name], rate).items():
            got[f"pipeline / {kind} / {name}"] = (pipe(audio)["embedding"], expected[name])
        # feature extractor + model with a mono array at the model rate, float and int16 PCM (full scale)
        wave = reference_wave(sources[name], rate)
        pcm = np.round(np.clip(wave, -1, 1 - 2 ** -15) * 32768).astype(np.int16)
        got[f"extractor + model / float [N] / {name}"] = (model_embedding(model, extractor, wave), expected[name])
        got[f"extractor + model / int16 [N] / {name}"] = (
            model_embedding(model, extractor, pcm), model_embedding(model, extractor, pcm / np.float32(32768)))
    results = embed.embed_folder(model, extractor, [sources[name] for name in names], batch_size=2,
                                 per_layer=False, per_frame=False)
    for name, result in zip(names, results):
        got[f"fusion-embed / file / {name}"] = (result["embeddings"], expected[name])
    bound = {key: TOLERANCE if key.split(" / ")[1] in ROUNDED_KINDS else 0.0 for key in got}
    failures = {key: relative(a, b) for key, (a, b) in got.items() if not relative(a, b) <= bound[key]}
    assert not failures, f"{backbone}: relative differences beyond 0 ({TOLERANCE} for ROUNDED_KINDS): {failures}"


@pytest.mark.parametrize("backbone", BACKBONES)
def test_fusion_eval_clip_equals_the_fixed_clip_of_the_other_entry_points(backbone, backbones, sources, tmp_path):
    """fusion-eval's dataset path decodes at the file's own rate and resamples with the same soxr call, so its
    clip (fixed to unit_sec) is the reference clip fixed the same way, sample for sample."""
    from fusion_eval.clips import ClipDataset, fix_length
    from fusion_eval.datasource import load_table
    from fusion_eval.tasks import resolve_task

    model, extractor = backbones[backbone]
    rate = extractor.sampling_rate
    folder = tmp_path / "task"
    (folder / "audio").mkdir(parents=True)
    rows = []
    for name, path in sources.items():
        target = folder / "audio" / f"{name}{path.suffix}"
        target.write_bytes(path.read_bytes())
        rows.append(f"audio/{target.name},{name},1")
    (folder / "metadata.csv").write_text("file_name,label,fold\n" + "\n".join(rows) + "\n")
    table = load_table(resolve_task(str(folder), unit_sec=1.0, fold_column="fold"), tmp_path, rate)
    dataset = ClipDataset(table, np.arange(len(table)), "start", rate, crop_seed=42)
    for row, name in enumerate(sources):
        fixed = fix_length(reference_wave(sources[name], rate), rate)
        np.testing.assert_array_equal(dataset[row]["wave"], fixed, err_msg=name)
        assert relative(model_embedding(model, extractor, dataset[row]["wave"]),
                        model_embedding(model, extractor, fixed)) == 0


def test_fusion_eval_cached_embedding_equals_fusion_embed_on_the_fixed_clip(sources, tmp_path):
    """The whole fusion-eval path (DataLoader, features on the accelerator, cache) on a saved CNN14 folder."""
    from accelerate import Accelerator
    from fusion_eval.clips import fix_length
    from fusion_eval.cache import ViewCache
    from fusion_eval.datasource import load_table
    from fusion_eval.extract import extract
    from fusion_eval.representations import Embedder
    from fusion_eval.tasks import resolve_task

    folder = tmp_path / "task"
    (folder / "audio").mkdir(parents=True)
    rows = []
    for name, path in sources.items():
        (folder / "audio" / f"{name}{path.suffix}").write_bytes(path.read_bytes())
        rows.append(f"audio/{name}{path.suffix},{name},1")
    (folder / "metadata.csv").write_text("file_name,label,fold\n" + "\n".join(rows) + "\n")
    embedder = Embedder(str(tiny_cnn14_folder(tmp_path / "model")))
    table = load_table(resolve_task(str(folder), unit_sec=1.0, fold_column="fold"), tmp_path, 16000)
    cache = ViewCache(tmp_path / "cache", np.arange(len(table)), 2, {"test": True})
    extract(Accelerator(cpu=True), embedder, table, cache, "start", 16000, crop_seed=42, batch_size=2)
    fusion = next(rep.key for rep in embedder.representations if rep.kind == "fusion")
    cached = cache.load(fusion)
    for row, name in enumerate(sources):
        expected = model_embedding(embedder.model, embedder.feature_extractor,
                                   fix_length(reference_wave(sources[name], 16000), 16000))
        assert relative(cached[row], expected) <= 1e-6, name  # a batch of two clips vs one: rounding (1.1e-7)


BAD_INPUTS = [
    (np.zeros((20, 20), np.float32), "cannot tell channels from samples.*\\(20, 20\\)"),
    (np.zeros((4, 6), np.float32), "cannot tell channels from samples"),
    (np.zeros((2, 3, 16000), np.float32), "expected audio \\[N\\], \\[channels, N\\] or \\[N, channels\\]"),
    (np.zeros(16000, np.uint16), "dtype uint16"),
    (np.zeros(0, np.float32), "empty"),
    (np.full(16000, np.nan, np.float32), "NaN or Inf"),
    ({"array": np.zeros(16000, np.float32)}, 'needs "sampling_rate"'),
    ({"sampling_rate": 16000}, 'needs "array" \\(or "raw"\\) and "sampling_rate"'),
    (b"not audio at all" * 40, "cannot decode audio file"),
    ("no/such/clip.wav", "cannot decode audio file no/such/clip.wav: no such file"),
    (np.zeros(16000, np.int64), "dtype int64, which is no PCM format"),
    (np.full(16000, 32767.0, np.float32), "looks like integer PCM stored as floats"),
]


@pytest.mark.parametrize("audio, message", BAD_INPUTS, ids=[
    "square", "tiny-square", "3-d", "uint16", "empty", "nan", "dict-no-rate", "dict-no-array", "bytes", "missing",
    "int64", "float-at-int16-scale"])
def test_bad_input_is_a_clear_error_in_the_pipeline(audio, message, backbones):
    model, extractor = backbones["cnn14"]
    with pytest.raises(ValueError, match=message):
        AudioEmbeddingPipeline(model=model, feature_extractor=extractor)(audio)


def test_stereo_channels_first_into_the_pipeline_is_the_channel_mean(backbones, sources):
    """The issue: a [2, N] array returned channel 0's embedding."""
    model, extractor = backbones["cnn14"]
    samples, rate = sf.read(sources["stereo_44k_wav"], dtype="float32")
    stereo = soxr.resample(samples, rate, 16000, quality="HQ").T  # [2, N] at the model rate
    got = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)(stereo)["embedding"]
    assert relative(got, model_embedding(model, extractor, stereo.mean(axis=0))) <= TOLERANCE
    assert relative(got, model_embedding(model, extractor, stereo[0])) > 1e-2, "not channel 0"


def test_dict_stereo_channels_last_keeps_its_duration(backbones):
    """The issue: {"array": [N, 2], "sampling_rate": 44100} became one stream twice as long."""
    model, extractor = backbones["cnn14"]
    rng = np.random.default_rng(1)
    stereo = (0.1 * rng.standard_normal((2 * 44100, 2))).astype(np.float32)
    pipe = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)
    got = pipe({"array": stereo, "sampling_rate": 44100}, per_frame=True)
    mono = soxr.resample(stereo.mean(axis=1), 44100, 16000, quality="HQ")
    assert len(mono) == 32000
    assert got["frames"].shape == pipe(mono, per_frame=True)["frames"].shape  # 2 s of frames, not 4 s
    assert relative(got["embedding"], model_embedding(model, extractor, mono)) <= TOLERANCE


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_half_precision_pipeline(backbone, dtype, backbones, sources):
    """The issue: dtype=torch.bfloat16 crashed CNN14, AST and EfficientAT with a dtype mismatch. Every model
    casts its float32 features to its own dtype; the embedding stays close to float32's (bf16 keeps 8
    mantissa bits, so a few percent through these random networks; fp16 10 bits)."""
    model, extractor = backbones[backbone]
    wave = reference_wave(sources["fsdd_8k_flac"], extractor.sampling_rate)
    full = model_embedding(model, extractor, wave)
    half = AudioEmbeddingPipeline(model=model.to(dtype), feature_extractor=extractor)
    try:
        got = half(wave)["embedding"]
    finally:
        model.to(torch.float32)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert relative(got, full) < (0.1 if dtype == torch.bfloat16 else 0.02)


def test_half_precision_pipeline_from_a_folder(tmp_path, sources):
    """The issue's exact call: pipeline("audio-embedding", model=FOLDER, trust_remote_code=True, dtype=bf16)."""
    from transformers import pipeline

    folder = tiny_cnn14_folder(tmp_path / "model")
    pipe = pipeline("audio-embedding", model=str(folder), trust_remote_code=True, dtype=torch.bfloat16)
    assert pipe.model.dtype == torch.bfloat16
    got = pipe(str(sources["fsdd_8k_flac"]))["embedding"]
    full = pipeline("audio-embedding", model=str(folder), trust_remote_code=True)(str(sources["fsdd_8k_flac"]))
    assert np.isfinite(got).all() and relative(got, full["embedding"]) < 0.1


@pytest.fixture
def folder_with_bad_files(tmp_path, sources):
    folder = tmp_path / "audio"
    folder.mkdir()
    for index in range(3):
        (folder / f"ok_{index}.ogg").write_bytes(sources["us8k_16k_ogg"].read_bytes())
    sf.write(folder / "short.wav", np.zeros(200, np.float32), 16000)  # CNN14 needs 4960 samples
    (folder / "broken.flac").write_bytes(b"not audio" * 100)
    return folder


def test_fusion_embed_names_a_too_short_file(folder_with_bad_files, tmp_path):
    """The issue: it said "clip 2 has 200 samples" (the index in the batch)."""
    (folder_with_bad_files / "broken.flac").unlink()
    with pytest.raises(SystemExit, match=r"short\.wav has 200 samples .*at least 4960 .*--skip-bad"):
        embed.main(["--random-weights-demo", "cnn14", str(folder_with_bad_files), "--output", str(tmp_path / "o.npz"),
                    "--batch-size", "4"])


def test_fusion_embed_skip_bad_skips_and_lists(folder_with_bad_files, tmp_path, capsys):
    output = tmp_path / "out.npz"
    embed.main(["--random-weights-demo", "cnn14", str(folder_with_bad_files), "--output", str(output),
                "--batch-size", "2", "--skip-bad"])
    saved = np.load(output)
    assert [name.rsplit("/", 1)[1] for name in saved["files"]] == ["ok_0.ogg", "ok_1.ogg", "ok_2.ogg"]
    assert saved["embeddings"].shape[0] == 3
    np.testing.assert_allclose(saved["embeddings"][1], saved["embeddings"][0], rtol=1e-6)
    assert sorted(name.rsplit("/", 1)[1] for name in saved["skipped"]) == ["broken.flac", "short.wav"]
    assert any("cannot decode audio file" in error for error in saved["skipped_errors"])
    assert tuple(saved["resampler"]) == resampler_tag() == ("soxr", soxr.__version__, "HQ")
    printed = capsys.readouterr().out
    assert "skipped 2 file(s)" in printed and "short.wav" in printed and "broken.flac" in printed


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_progress_file_is_reported_and_discarded(damage, tmp_path, sources, caplog):
    """The issue: a torn <output>.partial.npz made every later run die with zipfile.BadZipFile."""
    folder = tmp_path / "audio"
    folder.mkdir()
    for index in range(2):
        (folder / f"clip_{index}.flac").write_bytes(sources["fsdd_8k_flac"].read_bytes())
    output = tmp_path / "out.npz"
    progress = tmp_path / "out.npz.partial.npz"
    if damage == "garbage":
        progress.write_bytes(b"\x00" * 100)
    else:
        buffer = io.BytesIO()
        np.savez(buffer, fingerprint="x", results=np.array({0: {}}, dtype=object))
        progress.write_bytes(buffer.getvalue()[:-40])  # a save cut off before the zip directory
    with caplog.at_level(logging.WARNING, logger="fusion-embed"):
        embed.main(["--random-weights-demo", "cnn14", str(folder), "--output", str(output)])
    assert "is damaged" in caplog.text and "discarding it" in caplog.text
    assert np.load(output)["embeddings"].shape[0] == 2 and not progress.exists()


def test_progress_is_written_atomically(tmp_path, monkeypatch):
    """A save interrupted halfway leaves the previous progress file intact, never a torn one."""
    progress = tmp_path / "out.npz.partial.npz"
    embed.save_progress(progress, "fp", {0: {"embeddings": np.ones(3, np.float32)}})

    def torn_savez(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(embed.np, "savez", torn_savez)
    with pytest.raises(KeyboardInterrupt):
        embed.save_progress(progress, "fp", {0: {}, 1: {}})
    monkeypatch.undo()
    assert list(embed.load_progress(progress, "fp")) == [0]


@pytest.mark.parametrize("model_id", ["./models/efficientat-mn4", "models/efficientat-mn4", "/abs/missing/model",
                                      "a/b/c"])
def test_missing_model_folder_fails_at_once(model_id, tmp_path, monkeypatch):
    """The issue: a mistyped folder spent ~30 s retrying the Hub and never said the folder was missing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()  # "models/x" with an existing "models" folder is a local path
    started = time.perf_counter()
    with pytest.raises(SystemExit, match=f"model folder {model_id} does not exist\\. Check the path"):
        embed.main([model_id, str(tmp_path), "--output", str(tmp_path / "o.npz")])
    assert time.perf_counter() - started < 5


def test_unreachable_hub_id_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError) as error:
        check_model_source("someone/not-cached-model")
    assert "\n" not in str(error.value)
    assert "does not exist, and the Hugging Face Hub cannot be reached" in str(error.value)


def test_fusion_eval_missing_model_folder(tmp_path, capsys):
    from fusion_eval.cli import main

    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "nope"), "--task", "fsdd", "--output", str(tmp_path / "out")])
    assert f"model folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err


def test_looks_local():
    assert looks_local("./x") and looks_local("../x") and looks_local("/x") and looks_local("~/x")
    assert looks_local("a/b/c") and looks_local("a\\b")
    assert not looks_local("org/name") and not looks_local("name")


def test_ast_fit_normalization_refuses_silence():
    with pytest.raises(ValueError, match="std 0.0 .*silence"):
        AstFusionFeatureExtractor().fit_normalization([np.zeros(16000, np.float32)] * 2, sampling_rate=16000)


def test_load_audio_does_not_change_the_callers_dict():
    audio = {"array": np.zeros((16000, 2), np.float32), "sampling_rate": 32000}
    load_audio(audio, 16000)
    assert set(audio) == {"array", "sampling_rate"} and audio["array"].shape == (16000, 2)
    assert json.dumps(audio["sampling_rate"]) == "32000"


def test_pipeline_sampling_rate_argument_resamples_a_bare_array_and_unknown_arguments_fail(backbones):
    """A newcomer's finding: sampling_rate= and misspelt arguments were silently ignored."""
    model, extractor = backbones["cnn14"]
    pipe = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)
    wave = (0.1 * np.random.default_rng(2).standard_normal(44100)).astype(np.float32)
    got = pipe(wave, sampling_rate=44100)["embedding"]
    expected = pipe({"array": wave, "sampling_rate": 44100})["embedding"]
    np.testing.assert_array_equal(got, expected)
    assert relative(got, pipe(wave)["embedding"]) > 1e-2  # the rate was not ignored
    with pytest.raises(ValueError, match="unknown argument.*per_layers"):
        pipe(wave, per_layers=True)


def test_batched_pipeline_keeps_every_layer(backbones):
    """A newcomer's finding: batch_size > 1 with per_layer=True returned only layer 0."""
    model, extractor = backbones["cnn14"]
    pipe = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)
    rng = np.random.default_rng(3)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 24000, 16000)]
    batched = pipe(clips, batch_size=2, per_layer=True, per_frame=True)
    for clip, item in zip(clips, batched):
        single = pipe(clip, per_layer=True, per_frame=True)
        assert len(item["layers"]) == len(single["layers"]) == 7  # CNN14: the input and its six ConvBlocks
        for got, expected in zip(item["layers"], single["layers"]):
            assert relative(got, expected) <= TOLERANCE
        assert item["frames"].shape == single["frames"].shape
