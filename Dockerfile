# syntax=docker/dockerfile:1
# daisi-cdc-consumer container image (Debian 12).
#
#   docker build -t daisi-cdc-consumer .
#   docker run --rm -p 8080:8080 -e NATS_URL=nats://nats:4222 -e REDIS_ADDRESS=redis:6379 daisi-cdc-consumer
#
# The same image runs the dead-letter worker (docs/dlq-worker.md), a deployment of its own:
#   docker run --rm -p 8081:8081 -e NATS_URL=nats://nats:4222 \
#     -e DAISI_CDC_POSTGRES_CONNINFO='host=pg dbname=daisi_cdc user=daisi_cdc' -e PGPASSWORD=... \
#     --entrypoint /usr/local/bin/daisi-dlq-worker daisi-cdc-consumer --config /etc/daisi-cdc/config.yaml
#   (its health check: curl http://127.0.0.1:8081/healthz)
#
# Package lists come from scripts/packages-build.txt and scripts/packages-runtime.txt, the files
# scripts/install-deps.sh reads; the build type is scripts/test.sh's default (Release; warnings
# as errors is CI's choice, not the image's: CI builds the same Release with -Werror). The ctest
# `dockerfile_in_step` (scripts/check-dockerfile.sh) fails when this file drifts from them, and
# checks that every shared library of the built binary comes from packages-runtime.txt.

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
COPY scripts/packages-build.txt /tmp/packages-build.txt
RUN apt-get update \
 && sed -e 's/#.*//' /tmp/packages-build.txt | xargs -r apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCDC_BUILD_TESTS=OFF -DCDC_BUILD_BENCH=OFF \
 && cmake --build build -j "$(nproc)" --target daisi-cdc-consumer cdc-replay daisi-dlq-worker \
 && strip --strip-debug build/daisi-cdc-consumer build/cdc-replay build/daisi-dlq-worker \
 && build/daisi-cdc-consumer --config config.yaml --check-config \
 && build/daisi-dlq-worker --config config.yaml --check-config

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
COPY scripts/packages-runtime.txt /tmp/packages-runtime.txt
RUN apt-get update \
 && sed -e 's/#.*//' /tmp/packages-runtime.txt | xargs -r apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 daisi \
 && useradd --system --uid 10001 --gid daisi --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin daisi

COPY --from=build /src/build/daisi-cdc-consumer /src/build/cdc-replay /src/build/daisi-dlq-worker /usr/local/bin/
# The configuration: every key with its default. Mount your own file over it, or override keys
# with environment variables (below).
COPY config.yaml /etc/daisi-cdc/config.yaml

# Environment variables (CONTRACT.md section 10 and docs/configuration.md); each overrides the
# file. Precedence, lowest first: config.yaml < short names < DAISI_CDC_<SECTION>_<KEY>.
# None is set in the image: a variable pins its key, so a value baked in here would silently
# override a mounted file (and SIGHUP could not change it; the reload log line names such keys).
#   NATS_URL           nats.url: server URL(s), comma-separated, nats:// or tls://
#   REDIS_ADDRESS      redis.address: host:port
#   DEDUP_TTL          dedup.ttl: lifetime of the 'done' mark (e.g. 5m)
#   JS_ACK_WAIT        ingest.ack_wait (e.g. 30s)
#   JS_MAX_DELIVER     ingest.max_deliver (-1 = unlimited)
#   LOG_LEVEL          log.level: trace, debug, info, warn, error
#   DAISI_CDC_<SECTION>_<KEY>  any key, e.g. DAISI_CDC_METRICS_PORT=9090, DAISI_CDC_REDIS_DB=2
# Secrets: prefer files mounted read-only (Kubernetes secrets, Docker secrets) named by
#   DAISI_CDC_NATS_CREDS_FILE, DAISI_CDC_NATS_NKEY_SEED_FILE, DAISI_CDC_NATS_PASSWORD_FILE,
#   DAISI_CDC_NATS_TOKEN_FILE, DAISI_CDC_NATS_TLS_CA / _TLS_CERT / _TLS_KEY,
#   DAISI_CDC_REDIS_PASSWORD_FILE; DAISI_CDC_NATS_PASSWORD, DAISI_CDC_NATS_TOKEN and
#   DAISI_CDC_REDIS_PASSWORD work too. Secrets are never logged.

USER daisi:daisi
# /metrics, /healthz, /readyz (metrics.port; daisi-dlq-worker: dlq_worker.metrics_port, 8081)
EXPOSE 8080
# --metrics-url reads the configuration as the service does (the mounted file, then the
# environment) and prints where the listener is, e.g. http://127.0.0.1:9090: the check follows
# metrics.port wherever it is set. An invalid file or metrics.enabled: false prints nothing and
# fails the check.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS "$(daisi-cdc-consumer --config /etc/daisi-cdc/config.yaml --metrics-url)/healthz" >/dev/null || exit 1
# SIGTERM drains in-flight work (pipeline.drain_timeout) and exits 0: give the container at
# least drain_timeout + a few seconds to stop (docker stop -t, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/daisi-cdc-consumer", "--config", "/etc/daisi-cdc/config.yaml"]
