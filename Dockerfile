# One image with the four services: publisher, aggregator, bitcoin-api, rest-api.
# The Helm chart picks the binary with `command:`; the default entrypoint is bitcoin-api.
#
# Build:   docker build -t btc-price:dev .
# Offline: make image (builds static binaries on the host, then `--target prebuilt`; no pull needed)

# Global: usable in the FROM lines below.
ARG RUST_VERSION=1.95

# ---- prebuilt: the final image from static binaries built on the host (`make image`, offline).
# First in the file: the legacy builder builds stages in order up to --target, so this one needs
# no pull. BuildKit (the default elsewhere) skips it when building the default target. ----
FROM scratch AS prebuilt
COPY target/x86_64-unknown-linux-gnu/release/publisher target/x86_64-unknown-linux-gnu/release/aggregator \
     target/x86_64-unknown-linux-gnu/release/bitcoin-api target/x86_64-unknown-linux-gnu/release/rest-api \
     /usr/local/bin/
USER 65532:65532
EXPOSE 8080 8081 9090 9091
ENTRYPOINT ["/usr/local/bin/bitcoin-api"]

# ---- builder: dependencies first (a layer cached until a Cargo.toml or Cargo.lock changes) ----
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    RUSTFLAGS="-C target-feature=+crt-static"
ARG TARGET=x86_64-unknown-linux-gnu
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY common/Cargo.toml common/
COPY publisher/Cargo.toml publisher/
COPY aggregator/Cargo.toml aggregator/
COPY frontend/Cargo.toml frontend/
COPY exchange-standin/Cargo.toml exchange-standin/
COPY testkit/Cargo.toml testkit/
COPY e2e/Cargo.toml e2e/
COPY bench/Cargo.toml bench/
# Empty crates with the real manifests: compiles every dependency once, for this layer's cache.
RUN for crate in common publisher aggregator frontend exchange-standin testkit e2e bench; do \
      mkdir -p "$crate/src" && echo "" > "$crate/src/lib.rs"; \
    done \
 && for bin in ceiling poem_floor pipeline; do echo "fn main() {}" > "bench/src/$bin.rs"; done \
 && cargo build --release --locked --target "$TARGET" -p publisher -p aggregator -p frontend
# ---- builder: the project itself ----
# The commit built, for the `revision` label of btc_build_info: the context has no .git, so pass it
# (`--build-arg BTC_GIT_COMMIT=$(git rev-parse HEAD)`; CI does). Unset: "unknown". Declared here, after
# the dependency layer, so a new commit does not rebuild the dependencies. (`make image` builds on the
# host, from the checkout, and needs none of this.)
ARG BTC_GIT_COMMIT=""
COPY common common
COPY publisher publisher
COPY aggregator aggregator
COPY frontend frontend
# Touch the sources so cargo rebuilds them over the empty crates of the cached layer.
RUN find common publisher aggregator frontend -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --target "$TARGET" --bins -p publisher -p aggregator -p frontend \
 && mkdir -p /out \
 && cp "target/$TARGET/release/publisher" "target/$TARGET/release/aggregator" \
       "target/$TARGET/release/bitcoin-api" "target/$TARGET/release/rest-api" /out/

# ---- runtime: static binaries only; no shell, no package manager, non-root numeric user ----
# TLS roots are compiled in (rustls with webpki roots); name resolution is static glibc's.
FROM scratch AS runtime
LABEL org.opencontainers.image.title="btc-price-service" \
      org.opencontainers.image.description="BTC price pipeline: publisher, aggregator, bitcoin-api, rest-api" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /out/ /usr/local/bin/
USER 65532:65532
EXPOSE 8080 8081 9090 9091
ENTRYPOINT ["/usr/local/bin/bitcoin-api"]
