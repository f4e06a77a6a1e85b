FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# CPU torch first so sentence-transformers does not pull a CUDA build: pass the PyTorch
# CPU wheel index as TORCH_INDEX_URL (see README); empty means the default index.
ARG TORCH_INDEX_URL=""
RUN pip install torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
COPY pyproject.toml README.md ./
COPY index ./index
COPY bot ./bot
RUN pip install .
COPY data ./data
CMD ["python", "-m", "bot"]
