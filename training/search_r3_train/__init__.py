"""search-r3-train: contrastive SFT (stage 1) and RL (stage 2) for search-r3 models."""

from search_r3_train.arguments import ConfigError, DataArguments, LossArguments, ModelArguments

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataArguments", "LossArguments", "ModelArguments"]
