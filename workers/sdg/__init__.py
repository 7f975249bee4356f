"""Synthetic data generation: a PR's seed examples turned into a training set by a teacher
model behind vLLM. ``stage`` runs it as the ``sdg`` job."""
