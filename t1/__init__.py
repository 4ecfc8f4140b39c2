"""t1: the T1 recipe (arXiv 2501.11651) for open language models.

Trial-and-error SFT, RL scaled for exploration, and inference scaling by truncation.
"""

__version__ = "0.1.0"
