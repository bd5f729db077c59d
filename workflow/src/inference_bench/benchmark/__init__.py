"""One benchmark job: a variant, a batch size, a sequence length, on one hardware tag."""
