# syntax=docker/dockerfile:1
# Multi-stage build: compile in the official Rust image, run on a slim Debian as a non-root user.
#
#   docker build -t turnpike .          (BuildKit: the default builder of Docker 23 and later)
#
# The cargo registry and target/ live in BuildKit cache mounts, so a rebuild after a source change
# recompiles only the workspace crates that changed, not the ~400 dependencies. .dockerignore keeps
# the local target/, .git and databases out of the build context.
ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin turnpike \
    && cp target/release/turnpike /usr/local/bin/turnpike

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/turnpike turnpike && mkdir -p /var/lib/turnpike && chown turnpike /var/lib/turnpike
# Readiness probe without curl in the image: GET /readyz on the metrics listener through bash's
# /dev/tcp (200 once the database and the counter store answer; every role serves it).
COPY --chmod=0755 <<'EOF' /usr/local/bin/turnpike-ready
#!/bin/bash
port="${TURNPIKE_METRICS_ADDR:-127.0.0.1:9090}"
exec 3<>"/dev/tcp/127.0.0.1/${port##*:}" || exit 1
printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -r -t 3 _ code _ <&3
[ "$code" = 200 ]
EOF
COPY --from=build /usr/local/bin/turnpike /usr/local/bin/turnpike
USER turnpike
WORKDIR /var/lib/turnpike
ENV TURNPIKE_PORTAL_ADDR=0.0.0.0:8080 \
    TURNPIKE_GATEWAY_ADDR=0.0.0.0:8000 \
    TURNPIKE_METRICS_ADDR=0.0.0.0:9090 \
    TURNPIKE_LOG_FORMAT=json
EXPOSE 8080 8000 9090
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=3 CMD ["/usr/local/bin/turnpike-ready"]
# SIGTERM drains in-flight requests (drain_timeout_ms, 30 s) and flushes the meter: give
# `docker stop` longer than that (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/turnpike"]
CMD ["serve"]
