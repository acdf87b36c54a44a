"""RLHF Playground: compare base and instruction-tuned models, rate their answers, and train on the ratings."""

__version__ = "0.1.0"
