"""Long clips through the audio-embedding pipeline, fusion-embed and a saved folder's remote code."""

import numpy as np
import soundfile as sf
from chunking_testing import noise, tiny_model
from conftest import run_clean_process

from modeling_fusion import inference
from modeling_fusion.audio_input import load_audio
from modeling_fusion.chunking import embed_long_clip
from modeling_fusion.cli.embed import main as embed_main
from modeling_fusion.pipeline_audio_embedding import AudioEmbeddingPipeline
from modeling_fusion.convert.save_folder import save_model_folder


BUDGET = 0.02  # GiB: the tiny CNN14's whole-clip pass of 9-12 s needs more (4.8 MiB/s stated), of 2 s less


def test_pipeline_chunks_clips_over_the_budget_and_keeps_the_others_exact():
    model, extractor = tiny_model("cnn14")
    pipe = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)
    audio = noise(12.0, 16000, seed=4)
    result = pipe(audio, chunk_length_s=4.0, per_frame=True, per_layer=True, memory_budget_gib=BUDGET)
    reference = embed_long_clip(model, extractor, audio, 4.0, output_hidden_states=True, memory_budget_gib=BUDGET)
    assert reference.hidden_states is None  # chunked (a whole-clip pass returns per-layer frames)
    np.testing.assert_array_equal(result["embedding"], reference.pooler_output[0].numpy())
    np.testing.assert_array_equal(result["frames"], reference.last_hidden_state[0].numpy())
    assert len(result["layers"]) == 7
    whole = inference.embed(model, extractor, [audio], 16000).pooler_output[0].numpy()  # within the default budget:
    np.testing.assert_array_equal(pipe(audio)["embedding"], whole)  # the one embed step on the whole clip, bit for bit


def test_fusion_embed_chunks_long_files(tmp_path):
    model, extractor = tiny_model("cnn14")
    folder = save_model_folder(model, extractor, tmp_path / "model")
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "long.wav", noise(9.0, 16000, seed=5), 16000, subtype="FLOAT")
    sf.write(tmp_path / "audio" / "short.wav", noise(2.0, 16000, seed=6), 16000, subtype="FLOAT")
    embed_main([str(folder), str(tmp_path / "audio"), "--output", str(tmp_path / "out.npz"), "--chunk-length-s", "3",
                "--memory-budget-gib", str(BUDGET), "--per-frame"])
    saved = np.load(tmp_path / "out.npz", allow_pickle=True)
    files = [str(f).rsplit("/", 1)[-1] for f in saved["files"]]
    for name, budget in (("long.wav", BUDGET), ("short.wav", None)):  # chunked in 3 s chunks, whole
        wave = load_audio(tmp_path / "audio" / name, 16000)
        expected = embed_long_clip(model, extractor, wave, 3.0, memory_budget_gib=budget)
        row = files.index(name)
        np.testing.assert_allclose(saved["embeddings"][row], expected.pooler_output[0].numpy(), rtol=1e-6, atol=1e-7)
        assert saved["frames"][row].shape == tuple(expected.last_hidden_state.shape[1:])


def test_saved_folder_chunks_in_a_clean_process(tmp_path):
    model, extractor = tiny_model("cnn14")
    folder = save_model_folder(model, extractor, tmp_path / "model")
    assert (folder / "chunking.py").exists()
    audio = noise(12.0, 16000, seed=7)
    np.save(tmp_path / "audio.npy", audio)
    result = run_clean_process(f"""
    import json, numpy as np
    from transformers import pipeline
    pipe = pipeline("audio-embedding", model={str(folder)!r}, trust_remote_code=True)
    out = pipe(np.load({str(tmp_path / "audio.npy")!r}), chunk_length_s=4.0, memory_budget_gib={BUDGET})
    print(json.dumps({{"embedding": out["embedding"].tolist()}}))
    """, tmp_path)
    expected = embed_long_clip(model, extractor, audio, 4.0, memory_budget_gib=BUDGET).pooler_output[0].numpy()
    np.testing.assert_allclose(result["embedding"], expected, rtol=1e-6, atol=1e-7)
