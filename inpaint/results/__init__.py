"""Results: the papers' tables with their published rows, the ranked headline, the pictures and the report
stage's outputs (reports/, metrics/headline.json and the MLflow `report` run), and a Tune study's table."""
