"""Provenance: which source files a stage runs (read from the imports), the run fingerprint over code, data
and params, and the MLflow conventions every run follows."""
