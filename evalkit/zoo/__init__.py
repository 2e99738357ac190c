"""The trained zoo: evalkit's own tiny transformer, Mamba and hybrid, their synthetic corpus and training.

Outside the evaluation core: nothing in evalkit imports this package; the models it trains are
evaluated like any other checkpoint (aliases zoo-llama, zoo-mamba, zoo-hybrid).
"""
