"""fgamcd-opt: fine-grained AI model caching and downloading in multi-cell edge networks.

Data flows one way: instance -> solver -> plan -> oracle (beamformers) + evaluator (delay,
violations) -> result records -> reports.
"""

__version__ = "0.1.0"
