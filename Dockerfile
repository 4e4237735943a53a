# syntax=docker/dockerfile:1
# One image for the four services, the operator console and the `consentflow` jobs
# (migrate, topics).
#   docker build -t consentflow .
#   docker run --rm consentflow python -m services.consent

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md* ./
RUN mkdir -p shared services tools console \
 && touch shared/__init__.py services/__init__.py tools/__init__.py console/__init__.py \
 && pip install . \
 && pip uninstall -y consentflow
COPY shared ./shared
COPY services ./services
# tools/: the `consentflow` command (migrate and topics run from this image).
COPY tools ./tools
# console/: the operator console (`python -m console`), templates and catalogues with it.
COPY console ./console
RUN pip install --no-deps . \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.12-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
RUN groupadd --system --gid 10001 consentflow \
 && useradd --system --uid 10001 --gid consentflow --no-create-home --shell /usr/sbin/nologin consentflow
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('HTTP_PORT','8080')}/healthz\", timeout=2)"]
CMD ["python", "-m", "services.consent"]
