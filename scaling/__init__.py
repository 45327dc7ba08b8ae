"""Scaling laws of DeepSeek LLM (arXiv 2401.02954, section 3), torch-free.

`shapes` (the model shape and presets), `flops` (model scale M per token) and
`laws` (the fitted laws and `resolve_hparams`) are what the trainer needs at
run time, numpy only. `isoflop` (planning), `plan` (the `plan-isoflop` stage),
`fit` and `plots` are the planning side; scipy and matplotlib load only when a
fit or a plot needs them.
"""
