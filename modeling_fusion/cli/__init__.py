"""Command-line tools (never shipped in a model folder): `fusion-embed` and the model loading it shares
with `fusion-eval` and the HEAR / X-ARES adapters."""
