"""Adapters for the field's benchmark harnesses (never shipped in a model folder): a HEAR 2021 module
(`modeling_fusion.harness.hear`) and an X-ARES encoder file (`modeling_fusion/harness/xares.py`)."""
