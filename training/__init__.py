"""Training stage (point-in-time training sets, models in MLflow): see the Training issue."""
