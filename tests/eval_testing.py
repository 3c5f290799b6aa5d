"""Small fixtures for the evaluation-harness tests: a tiny random CNN14 folder and a synthetic audio folder."""

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from modeling_fusion.configuration_cnn14 import Cnn14FusionConfig
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.modeling_cnn14 import Cnn14ForAudioClassification
from modeling_fusion.convert.save_folder import save_model_folder

TINY_CNN14 = dict(block_channels=(4, 8, 8, 8, 8, 8))


def tiny_cnn14_folder(path, seed=0):
    """A CNN14-Fusion#3#6 with 4-8 channels and random weights, saved as a model folder."""
    torch.manual_seed(seed)
    model = Cnn14ForAudioClassification(Cnn14FusionConfig(**TINY_CNN14)).eval()
    return save_model_folder(model, Cnn14FeatureExtractor(), path)


def tone(freq, seconds, rate, phase=0.0):
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def synthetic_folder(path, clips_per_fold=6, folds=(1, 2, 3), rate=8000, durations=(0.6, 1.0, 1.7)):
    """Audiofolder of tones: 3 classes (220/440/880 Hz) x durations, with `fold` and `split` columns.

    Fold k's clips are split "test" for k == folds[-1], else "train". Returns the metadata DataFrame.
    """
    (path / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for fold in folds:
        for index in range(clips_per_fold):
            label = ("low", "mid", "high")[index % 3]
            freq = {"low": 220, "mid": 440, "high": 880}[label] * (1 + 0.01 * fold)
            seconds = durations[(index // 3) % len(durations)]
            name = f"audio/f{fold}_{index}.wav"
            sf.write(path / name, tone(freq, seconds, rate, phase=index), rate)
            rows.append({"file_name": name, "label": label, "fold": fold,
                         "split": "test" if fold == folds[-1] else "train"})
    frame = pd.DataFrame(rows)
    frame.to_csv(path / "metadata.csv", index=False)
    return frame


def extract_synthetic(root, cache_dir, accelerator, embedder=None, chunk_size=5, batch_size=2):
    """Extract the random view of every row of `root/tones` with the model in `root/model`.

    Returns (clips computed, the ViewCache).
    """
    from fusion_eval.cache import ViewCache
    from fusion_eval.datasource import load_table
    from fusion_eval.extract import extract
    from fusion_eval.representations import Embedder
    from fusion_eval.tasks import resolve_task

    embedder = embedder or Embedder(str(root / "model"))
    table = load_table(resolve_task(str(root / "tones"), unit_sec=1.0, fold_column="fold"), root, 16000)
    cache = ViewCache(cache_dir, np.arange(len(table)), chunk_size, {"test": True})
    computed = extract(accelerator, embedder, table, cache, "random", 16000, crop_seed=42, batch_size=batch_size)
    return computed, cache
