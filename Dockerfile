# A minimal image around the static binary that scripts/dist.sh builds:
#   scripts/dist.sh --no-wheel && docker build -t batchinfer:0.1.0 .
#   docker run --rm -v "$PWD:/data" -w /data batchinfer:0.1.0 score -m model.onnx -i in.parquet -o out.parquet
# The binary needs no libc, so the image holds only it, the CA certificates that
# object storage over HTTPS needs, and a non-root user (outputs are written
# beside their destination, so mount a writable directory for them).
FROM debian:bookworm-slim AS certificates
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*

FROM scratch
COPY --from=certificates /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY dist/batchinfer-0.1.0-x86_64-unknown-linux-musl /usr/local/bin/batchinfer
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/batchinfer"]
