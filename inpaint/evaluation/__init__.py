"""Evaluation: one evaluator and one set of metrics for every model on the recorded test pairs, the
classical fills scored beside the variants, the paired comparisons of their per-pair scores, the evaluation
record (evals/, metrics/ and MLflow), and `inpaint fill` on a user's own photo."""
