# Scale benchmark (scale.py): the synthetic store generator.
