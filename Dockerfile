# syntax=docker/dockerfile:1
# herald's container image: `docker build --build-arg FEATURES=chat,git -t herald .`
#
# FEATURES lists the provider families to compile in (chat, git, alerting, eventhub, nats,
# googlepubsub), `templates` for message templates and `jetstream` for the shared outbox of
# several replicas (docs/scaling.md), or `all` (every family, templates and jetstream);
# generic webhooks are always in; empty or `generic` for those alone. The build stage runs
# exactly `cargo xtask dist`, the command release tarballs are made with (an xtask test checks
# this), so the image's binary is the tarball's. The cargo registry and the target directory
# are BuildKit cache mounts: a change to herald's sources recompiles herald's crates, not every
# dependency. The cached target is not part of any layer, so the tarball is unpacked out of it in
# the same RUN (after clearing the tarballs of earlier builds from the cache).
#
# Ports (herald's defaults, here on every interface):
#   9090  events: Flux controllers post here (the Service Flux's --events-addr names)
#   8080  Prometheus /metrics
#   9440  /healthz and /readyz only (the HEALTHCHECK below)
# The status API (/api/v1/: deliveries with their events, retry, drop) stays on 127.0.0.1:9441
# inside the container: reach it with `docker exec <c> herald outbox list` or
# `kubectl port-forward`. To serve it on every interface, set HERALD_API_ADDR=:9441 together
# with HERALD_API_TOKEN_FILE (a mounted file holding the token).
# Volume: /var/lib/herald, the data dir (--data-dir / HERALD_DATA_DIR).
# Manifests: mount Providers, Alerts and Secrets under /etc/herald (HERALD_MANIFESTS).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
ARG FEATURES=all
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    rm -rf target/dist && \
    cargo xtask dist --features "${FEATURES}" && \
    mkdir -p /out/herald /out/data && \
    tar -xzf target/dist/herald-*.tar.gz -C /out/herald --strip-components=1

# glibc (the binary links it), CA certificates, tzdata, and a non-root user; no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/herald/herald /usr/local/bin/herald
COPY --from=build /out/herald/LICENSE /out/herald/README.md /usr/share/doc/herald/
COPY --from=build --chown=65532:65532 /out/data /var/lib/herald
ENV HERALD_MANIFESTS=/etc/herald
ENV HERALD_DATA_DIR=/var/lib/herald
ENV HERALD_EVENTS_ADDR=:9090
ENV HERALD_METRICS_ADDR=:8080
ENV HERALD_HEALTH_ADDR=:9440
EXPOSE 9090 8080 9440
VOLUME ["/var/lib/herald"]
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/herald", "healthcheck", "--url", "http://127.0.0.1:9440/readyz"]
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["serve"]
