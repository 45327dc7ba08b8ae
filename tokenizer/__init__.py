"""Tokenizer: 100k byte-level BPE with DeepSeek-style pre-tokenization."""
