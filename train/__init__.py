"""Pretraining: model, data loader, engine, scaling laws."""
