"""Fixtures for models the project builds (bi-encoder, FlashRank-architecture cross-encoders)."""
