"""MAASN-DA, the paper's learned solver (docs/maasn.md): the Dec-POMDP environment (env.py),
the networks (networks.py), the echo-state-network data augmentation (esn.py), the replay buffer
(replay.py), the learner (learner.py), policy files (policy.py) and the training loop
(training.py). Importing this package does not import torch; the submodules that need it do."""
