"""What a model reads: the corpus of real text (its calibration and evaluation split, a checkpoint's
tokenizer, batches of similar lengths) and the feeds built from it or from seeded token ids, for timing,
parity and accuracy alike.

May import the core modules (the package root) only; every stage reads its inputs from here.
"""
