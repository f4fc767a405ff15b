"""Training on Ray: the Ray Train driver and loop (train.py), its checkpoints, the workers' rendezvous and
global-batch statistics, the speed switches, every stale variant at once (together.py), Ray Tune studies and
their validation split, and the cost plan of a cluster run."""
