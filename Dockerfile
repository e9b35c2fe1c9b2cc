# One image for the API and the workers. CPU by default; build with
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124  for the GPU worker.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg espeak-ng curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY medley medley
COPY enrich enrich
COPY index index
COPY api api
COPY workers workers
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" torch torchvision \
    && pip install --no-cache-dir . \
    && medley prepare
ENV MEDLEY_DATA_DIR=/data MEDLEY_HOST=0.0.0.0
VOLUME /data
EXPOSE 8000
CMD ["medley", "serve"]
