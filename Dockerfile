# syntax=docker/dockerfile:1
# The throughline image: one static-ish binary on a distroless base, run as a non-root user.
#   docker build -t ghcr.io/throughline-cx/throughline:0.1.0 .
# The image runs with a read-only root filesystem in Kubernetes: nothing is written outside
# the volumes the chart mounts (/tmp, and a data volume for SQLite in development).

# --- build ------------------------------------------------------------------------------
# The workspace's rust-version is 1.94; the slim image carries gcc for the bundled SQLite
# and ring.
FROM rust:1.94-slim-bookworm AS build
WORKDIR /src

# Every workspace member's manifest is needed for cargo to resolve the workspace, even
# though only the throughline binary is built.
COPY Cargo.toml Cargo.lock ./
COPY proto ./proto
COPY services ./services
COPY tests ./tests
COPY bench ./bench

# Cache mounts keep the registry and target directory between builds; the binary is copied
# out of the cache mount so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p throughline \
    && install -D -m 0755 target/release/throughline /out/throughline \
    && install -d -m 0755 /out/data/data

# --- run --------------------------------------------------------------------------------
# distroless/cc has glibc and libgcc (the binary links them) and nothing else: no shell,
# no package manager. Its nonroot user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/throughline /usr/local/bin/throughline
# The embedded default database (sqlite://data/throughline.db, relative to the working
# directory) needs a directory the non-root user owns; Kubernetes mounts a volume over it.
COPY --from=build --chown=65532:65532 /out/data /var/lib/throughline

# Listening on all interfaces is what a container needs; the binary's defaults are loopback.
ENV THROUGHLINE__SERVER__LISTEN_ADDR=0.0.0.0:50051 \
    THROUGHLINE__SERVER__METRICS_LISTEN_ADDR=0.0.0.0:9464 \
    THROUGHLINE__TELEMETRY__LOG_FORMAT=json

USER 65532:65532
WORKDIR /var/lib/throughline
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/throughline"]
CMD ["serve"]
