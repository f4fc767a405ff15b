"""Training on Ray: the Ray Train driver and loop (train.py), the workers' rendezvous on one machine, the speed
switches, every stale variant at once (together.py), Ray Tune studies and their validation split, and the cost
plan of a cluster run. The checkpoints and the model file (inpaint/checkpoints.py) sit outside: evaluation reads
them without importing the trainer."""
