# The production image: nginx (traced by nginx-opentracing + the LightStep
# plugin) in front of uWSGI and the app, as one unprivileged container.
#
#   docker build -t logreg-service .
#   docker run -p 8080:8080 -e ADMIN_TOKEN=... -e LIGHTSTEP_ACCESS_TOKEN=... \
#     -v logreg-models:/var/lib/logreg/models logreg-service
#
# Why these versions, which must be changed together:
# - nginx 1.22.1: Debian 12's nginx (built --with-compat), which is what the
#   runtime stage installs; a dynamic module loads only into the exact nginx
#   version it was built for.
# - LightStep's vendor plugin (lightstep-tracer-cpp v0.13.0) implements the
#   OpenTracing C++ 1.5 ABI: its port to OpenTracing 1.6 was never released,
#   and the 1.6 ABI is not backward compatible.
# - So the nginx-opentracing module must be its OpenTracing 1.5.1 build: the
#   asset without "-ot16" in its name, from a release before v0.34.0 (which
#   dropped the 1.5.1 builds). v0.33.0 has it for nginx 1.22.1.
# - Both .so files link libstdc++ statically; the build checks, with
#   `nginx -t`, that the module and the plugin really load together here.

ARG NGINX_VERSION=1.22.1
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# -- 1. The tracing module and the LightStep plugin, checked against SHA256SUMS.
FROM debian:12.9-slim AS tracing
ARG NGINX_VERSION
ARG NGINX_OPENTRACING_VERSION=v0.33.0
ARG LIGHTSTEP_TRACER_VERSION=v0.13.0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# The digests of the two downloads, reviewed in git like the versions above.
COPY deploy/docker/SHA256SUMS ./
RUN module="linux-amd64-nginx-${NGINX_VERSION}-ngx_http_module.so.tgz" \
 && plugin="linux-amd64-liblightstep_tracer_plugin.so.gz" \
 && curl -fsSLo "$module" "https://github.com/opentracing-contrib/nginx-opentracing/releases/download/${NGINX_OPENTRACING_VERSION}/${module}" \
 && curl -fsSLo "$plugin" "https://github.com/lightstep/lightstep-tracer-cpp/releases/download/${LIGHTSTEP_TRACER_VERSION}/${plugin}" \
 && grep -E "^[0-9a-f]{64}  (${module}|${plugin})\$" SHA256SUMS > wanted.sha256 || true \
 && if [ "$(wc -l < wanted.sha256)" != 2 ]; then \
      echo "deploy/docker/SHA256SUMS needs the sha256 of ${module} and ${plugin}:"; \
      sha256sum "$module" "$plugin"; exit 1; \
    fi \
 && sha256sum --strict -c wanted.sha256 \
 && tar -xzf "$module" ngx_http_opentracing_module.so \
 && gunzip -c "$plugin" > liblightstep_tracer_plugin.so \
 && for so in ngx_http_opentracing_module.so liblightstep_tracer_plugin.so; do \
      echo "$so needs $(strings "$so" | grep -oE 'GLIBCXX_[0-9.]+' | sort -uV | tail -n 1)"; \
    done

# -- 2. The virtual environment, built where compilers are (uWSGI is C).
FROM ${PYTHON_IMAGE} AS venv
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      -r /tmp/requirements.txt

# -- 3. The runtime: nginx, the two .so files, the venv, the app.
FROM ${PYTHON_IMAGE} AS runtime
ARG NGINX_VERSION
# Debian's archive holds only the current revision of 1.22.1: pin the upstream
# version the module was built for, take the revision the release has.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      "nginx-light=${NGINX_VERSION}-*" \
      "tini=0.19.0-*" \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 logreg \
 && useradd --system --uid 10001 --gid logreg --home-dir /srv/logreg --shell /usr/sbin/nologin logreg \
 && install -d -o logreg -g logreg -m 0755 /run/logreg /var/log/logreg /var/lib/logreg/models
COPY --from=tracing /build/ngx_http_opentracing_module.so /usr/lib/nginx/modules/
COPY --from=tracing /build/liblightstep_tracer_plugin.so /usr/local/lib/
COPY --from=venv /opt/venv /opt/venv
# The module and the plugin must load into this nginx, with this libstdc++,
# together: a mismatch fails the build here, not the container at start.
RUN printf '%s\n' \
      'load_module /usr/lib/nginx/modules/ngx_http_opentracing_module.so;' \
      'events {}' \
      'http { opentracing_load_tracer /usr/local/lib/liblightstep_tracer_plugin.so /tmp/ls.json; }' \
      > /tmp/load-check.conf \
 && printf '{"component_name": "build-check", "access_token": "x"}\n' > /tmp/ls.json \
 && nginx -t -c /tmp/load-check.conf \
 && rm /tmp/load-check.conf /tmp/ls.json

WORKDIR /srv/logreg
COPY app/ app/
COPY deploy/__init__.py deploy/render.py deploy/
COPY deploy/docker/entrypoint.py deploy/docker/
COPY deploy/uwsgi/app.ini deploy/uwsgi/
COPY deploy/nginx/ deploy/nginx/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080 \
    PROCESSES=4 \
    NGINX_TRACING=opentracing \
    APP_DIR=/srv/logreg \
    APP_VENV=/opt/venv \
    RUN_DIR=/run/logreg \
    LOG_DIR=/var/log/logreg \
    NGINX_DIR=/run/logreg/nginx \
    MODEL_DIR=/var/lib/logreg/models

# Numeric, so a runtime that enforces "non-root" can check it without /etc/passwd.
USER 10001:10001
EXPOSE 8080
VOLUME ["/var/lib/logreg/models"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ['PORT'], timeout=4)"]
STOPSIGNAL SIGTERM
# tini as PID 1 reaps orphans: a training runner outlives a recycled worker,
# and only PID 1 can collect it. It passes SIGTERM on to the entrypoint.
ENTRYPOINT ["tini", "--", "python", "/srv/logreg/deploy/docker/entrypoint.py"]
