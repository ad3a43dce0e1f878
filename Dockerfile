# syntax=docker/dockerfile:1.7
# The production image: the release binary, its config/ and CA certificates on distroless,
# run as a numeric non-root user. Build: docker build -t idnow-attempts .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
# The commit built, for idnow_attempts_build_info and the start-up log line:
# docker build --build-arg REVISION=$(git rev-parse --short HEAD) .
ARG REVISION=unknown
WORKDIR /src
COPY . .
# Registry and target/ live in cache mounts: a rebuild after a source change recompiles the
# crate, not its dependencies. The script is the same one CI runs.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    IDNOW_ATTEMPTS_REVISION="${REVISION}" ./scripts/build-release /idnow-attempts

# glibc, libgcc and CA certificates (for TLS to PostgreSQL), no shell, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
# Cargo.toml's version (scripts/check-deploy fails when they differ).
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="idnow-attempts" \
      org.opencontainers.image.description="Verified IDnow result webhooks in, per-signing attempt history out, PostgreSQL as system of record" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="UNLICENSED" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
WORKDIR /app
COPY --from=build /idnow-attempts /app/idnow-attempts
COPY config/ /app/config/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/app/idnow-attempts"]
CMD ["serve"]
