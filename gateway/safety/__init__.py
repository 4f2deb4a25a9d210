"""Trust-layer safety: PII detection, placeholders, the vault cipher, the guard stages."""
