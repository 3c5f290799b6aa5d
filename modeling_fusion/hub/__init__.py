"""Publishing (never shipped in a model folder): `python -m modeling_fusion.hub build|push|list`.

`configs/` holds the published variants, `cards/` the model-card template and the paper's numbers.
"""
