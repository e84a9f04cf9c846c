# Multi-stage build: compile in the official Rust image, run on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin turnpike

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/turnpike turnpike && mkdir -p /var/lib/turnpike && chown turnpike /var/lib/turnpike
COPY --from=build /src/target/release/turnpike /usr/local/bin/turnpike
USER turnpike
WORKDIR /var/lib/turnpike
ENV TURNPIKE_PORTAL_ADDR=0.0.0.0:8080 \
    TURNPIKE_GATEWAY_ADDR=0.0.0.0:8000 \
    TURNPIKE_METRICS_ADDR=0.0.0.0:9090 \
    TURNPIKE_LOG_FORMAT=json
EXPOSE 8080 8000 9090
ENTRYPOINT ["/usr/local/bin/turnpike"]
CMD ["serve"]
