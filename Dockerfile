# syntax=docker/dockerfile:1
# The discodeit backend: a multi-stage build (Rust toolchain and librdkafka's build tools in
# the first stage only) and a small Debian runtime image.

FROM rust:1-bookworm AS build
# rdkafka builds librdkafka from source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev zlib1g-dev \
        libsasl2-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin discodeit \
    && rm -rf src
COPY src ./src
COPY sql ./sql
# Compiled into the binary (served at /v3/api-docs).
COPY openapi.yaml ./
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin discodeit

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data discodeit \
    && mkdir -p /data/storage && chown -R discodeit /data
COPY --from=build /src/target/release/discodeit /usr/local/bin/discodeit
USER discodeit
# The admin listener (metrics, probes) stays on the container's loopback unless
# DISCODEIT_ADMIN_ADDR says otherwise (compose opens it to the internal network for Prometheus).
ENV DISCODEIT_ADDR=0.0.0.0:8080 \
    DISCODEIT_STORAGE_DIR=/data/storage
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=12 \
    CMD curl -fsS http://127.0.0.1:9091/actuator/health/readiness || exit 1
ENTRYPOINT ["/usr/local/bin/discodeit"]
