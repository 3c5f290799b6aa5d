"""Fine-tune a fusion model for audio classification with transformers' Trainer.

    python examples/finetune_audio_classification.py --model MODEL_DIR --data ../shared/data/fsdd \
        --output runs/fsdd-digits [--label-column label] [--freeze-backbone] [--epochs 3]

The data is an audiofolder dataset (metadata.csv with file_name, a label column and a `split`
column with train/test; without one, 20% is held out). The AudioSet head is replaced by a linear
classifier on the *fused* embedding (`classifier_input="fusion"`); `--freeze-backbone` trains only
that classifier (a linear probe trained end to end), otherwise the whole network is fine-tuned.
The result is a ForAudioClassification folder for pipeline("audio-classification").
"""

import argparse

import numpy as np
import torch
from datasets import Audio, load_dataset
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, Trainer, TrainingArguments

from modeling_fusion.audio_input import load_audio
from modeling_fusion.convert.save_folder import save_model_folder


def load_splits(data_dir, label_column, limit=None):
    # decode=False: the collator decodes with the package's one input path (load_audio: channel mean, soxr)
    dataset = load_dataset("audiofolder", data_dir=data_dir, split="train").cast_column("audio", Audio(decode=False))
    if limit:
        dataset = dataset.shuffle(seed=0).select(range(min(limit, len(dataset))))
    if "split" in dataset.column_names:
        train = dataset.filter(lambda split: split != "test", input_columns="split")
        test = dataset.filter(lambda split: split == "test", input_columns="split")
    else:
        parts = dataset.train_test_split(test_size=0.2, seed=0)
        train, test = parts["train"], parts["test"]
    names = sorted(set(map(str, train[label_column])))
    return train, test, names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--model", required=True, help="a converted model folder or Hub id")
    parser.add_argument("--data", required=True, help="audiofolder dataset folder")
    parser.add_argument("--output", required=True)
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--freeze-backbone", action="store_true")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="zero-pad shorter clips to this length")
    parser.add_argument("--limit", type=int, help="use only this many clips (quick runs)")
    args = parser.parse_args(argv)

    extractor = AutoFeatureExtractor.from_pretrained(args.model, trust_remote_code=True)
    train, test, names = load_splits(args.data, args.label_column, args.limit)
    label2id = {name: index for index, name in enumerate(names)}
    model = AutoModelForAudioClassification.from_pretrained(
        args.model, trust_remote_code=True, classifier_input="fusion", problem_type="single_label_classification",
        id2label=dict(enumerate(names)), label2id=label2id, ignore_mismatched_sizes=True)
    if args.freeze_backbone:
        backbone = model.base_model
        backbone.requires_grad_(False)
        backbone.eval()
        backbone.train = lambda mode=True: backbone  # stays in eval mode: BatchNorm statistics and dropout frozen

    min_samples = int(args.min_seconds * extractor.sampling_rate)

    def collate(rows):
        clips = [load_audio(row["audio"], extractor.sampling_rate) for row in rows]
        clips = [np.pad(clip, (0, max(0, min_samples - len(clip)))) for clip in clips]
        features = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt")
        features["labels"] = torch.tensor([label2id[str(row[args.label_column])] for row in rows])
        return features

    def accuracy(prediction):
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    training = TrainingArguments(
        output_dir=args.output, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=args.learning_rate, eval_strategy="epoch",
        save_strategy="no", logging_steps=5, remove_unused_columns=False, report_to=[])
    trainer = Trainer(model=model, args=training, train_dataset=train, eval_dataset=test, data_collator=collate,
                      compute_metrics=accuracy)
    trainer.train()
    metrics = trainer.evaluate()
    save_model_folder(trainer.model.eval(), extractor, args.output)
    print(f"test accuracy {metrics['eval_accuracy']:.3f}; saved {args.output}")
    return trainer, metrics


if __name__ == "__main__":
    main()
