"""The accuracy stage (workflow/rules/accuracy.smk): does a variant still do the model's job on real text?
Sentence embeddings and a classifier's labels against PyTorch FP32, the text reference they are compared
with, and the task metrics the gate reads.

May import the core modules and `inputs`. Below `build`: the accuracy-aware INT8 recipe
(build.quantize) steers its search with these metrics.
"""
