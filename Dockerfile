# syntax=docker/dockerfile:1.7
# First version of the image; hardening and the Kubernetes deployment are tracked separately.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Queries are checked against the committed .sqlx/, not a live database.
ENV SQLX_OFFLINE=true
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin idnow-attempts \
    && cp target/release/idnow-attempts /idnow-attempts

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /idnow-attempts /app/idnow-attempts
COPY config/ /app/config/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/app/idnow-attempts"]
CMD ["serve"]
