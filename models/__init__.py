"""BuzzWatch models: text normalisation, data, training, export and the scoring core (models.predictor)."""
