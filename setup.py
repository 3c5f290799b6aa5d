from setuptools import find_packages, setup

setup(
    name="modeling-fusion",
    version="0.1.0",
    description="Multilayer-fusion audio embeddings (Niizumi et al., EUSIPCO 2022) as Hugging Face models",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["modeling_fusion", "modeling_fusion.*", "fusion_eval", "fusion_eval.*"]),
    # the published variants and model-card sources are read at run time by `python -m modeling_fusion.hub`
    package_data={"modeling_fusion.hub": ["configs/*/*.json", "cards/*"]},
    install_requires=[
        "torch>=2.9,<2.15",
        "transformers>=5.23,<6",
        "huggingface_hub>=2.4,<3",
        "safetensors>=0.8",
        "numpy>=2.0",
        "scipy>=1.14",
        "soundfile>=0.13",
        "soxr>=1.0",
        "tqdm>=4.66",
    ],
    extras_require={
        "eval": [
            "datasets>=5.2,<6",
            "torchcodec>=0.13,<0.14",
            "accelerate>=1.15,<2",
            "evaluate==0.4.6",
            "scikit-learn>=1.5",
            "pandas>=2.2",
            "matplotlib>=3.9",
        ],
        # python -m modeling_fusion.export onnx: torch.onnx's dynamo exporter needs onnx + onnxscript; checks use onnxruntime
        "export": ["onnx>=1.23,<2", "onnxscript>=0.7,<0.8", "onnxruntime>=1.31,<2"],
        "test": [
            "pytest>=8",
            "onnx>=1.23,<2",
            "onnxscript>=0.7,<0.8",
            "onnxruntime>=1.31,<2",
            "panns_inference==0.1.1",
            "torchlibrosa>=0.1",
            "torchvggish==0.2",
            "resampy>=0.4",
            "ai-edge-litert>=2.3,<3",
            "tflite>=2.18",
        ],
    },
    entry_points={
        "console_scripts": [
            "fusion-embed=modeling_fusion.cli.embed:main",
            "fusion-eval=fusion_eval.cli:main",
        ]
    },
)
