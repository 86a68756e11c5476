"""The registered pyfunc model as an MLflow "model from code": MLflow copies this file into every
model version and runs it when the version is loaded, so nothing is cloudpickled."""

import mlflow

from nas.tracking.registry import ExportedModel

mlflow.models.set_model(ExportedModel())
