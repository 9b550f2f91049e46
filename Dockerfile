# stackd in a container: a static-ish binary on a distroless base, running as a non-root user.
#   docker build -t stackd --build-arg STACKD_REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run -p 8086:8086 -p 8125:8125/udp -v stackd-data:/data stackd
# Listens on all interfaces with authentication off unless told otherwise: add
# STACKD_WRITE_CREDENTIALS / STACKD_READ_CREDENTIALS (see the README) before exposing it.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
ARG STACKD_REVISION=unknown
ENV STACKD_REVISION=${STACKD_REVISION}
RUN cargo build --profile dist --locked --bin stackd \
    && mkdir -p /out/data \
    && cp target/dist/stackd /out/stackd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/stackd /usr/local/bin/stackd
# The data volume, owned by the image's non-root user (65532).
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV STACKD_DATA_DIR=/data \
    STACKD_HTTP_ADDR=0.0.0.0:8086 \
    STACKD_STATSD_ADDR=0.0.0.0:8125
VOLUME ["/data"]
EXPOSE 8086/tcp 8125/udp
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 CMD ["/usr/local/bin/stackd", "--health-probe"]
ENTRYPOINT ["/usr/local/bin/stackd"]
