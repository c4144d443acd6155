# One image with the four services: publisher, aggregator, bitcoin-api, rest-api.
# The Helm chart picks the binary with `command:`; the default entrypoint is bitcoin-api.
#
# Build:   docker build -t btc-price:dev .
# Offline: make image (builds static binaries on the host, then `--target prebuilt`; no pull needed)
#
# Every binary is built with cargo-auditable: it carries its dependency list (crates and versions,
# in the `.dep-v0` section), which `cargo audit bin`, syft, trivy and grype read from the image.
# The builder image is pinned by digest; scripts/check-supply-chain.py fails on a FROM without one.

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
# rust:1.95.0-slim-bookworm, pinned by digest. No registry is reachable where this was written: the
# digest is the one several public Dockerfiles pin for this tag (cross-checked; one names it the
# multi-arch index). To verify or move to a newer image: `docker buildx imagetools inspect
# rust:<version>-slim-bookworm` prints the index digest ("Digest:"); put both here (and the toolchain
# in .github/workflows/*.yaml, rust-version in Cargo.toml).
FROM rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    RUSTFLAGS="-C target-feature=+crt-static"
ARG TARGET=x86_64-unknown-linux-gnu
# The same pinned version as scripts/install-supply-chain-tools.sh (`make image`).
ARG CARGO_AUDITABLE_VERSION=0.7.7
RUN cargo install --locked "cargo-auditable@${CARGO_AUDITABLE_VERSION}"
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY contract/Cargo.toml contract/
COPY runtime/Cargo.toml runtime/
COPY publisher/Cargo.toml publisher/
COPY aggregator/Cargo.toml aggregator/
COPY frontend/Cargo.toml frontend/
COPY exchange-standin/Cargo.toml exchange-standin/
COPY testkit/Cargo.toml testkit/
COPY e2e/Cargo.toml e2e/
COPY bench/Cargo.toml bench/
# Empty crates with the real manifests: compiles every dependency once, for this layer's cache.
RUN for crate in contract runtime publisher aggregator frontend exchange-standin testkit e2e bench; do \
      mkdir -p "$crate/src" && echo "" > "$crate/src/lib.rs"; \
    done \
 && for bin in ceiling poem_floor pipeline; do echo "fn main() {}" > "bench/src/$bin.rs"; done \
 && cargo auditable build --release --locked --target "$TARGET" -p publisher -p aggregator -p frontend
# ---- builder: the project itself ----
# The commit built, for the `revision` label of btc_build_info: the context has no .git, so pass it
# (`--build-arg BTC_GIT_COMMIT=$(git rev-parse HEAD)`; CI does). Unset: "unknown". Declared here, after
# the dependency layer, so a new commit does not rebuild the dependencies. (`make image` builds on the
# host, from the checkout, and needs none of this.)
ARG BTC_GIT_COMMIT=""
COPY contract contract
COPY runtime runtime
COPY publisher publisher
COPY aggregator aggregator
COPY frontend frontend
# Touch the sources so cargo rebuilds them over the empty crates of the cached layer.
RUN find contract runtime publisher aggregator frontend -name '*.rs' -exec touch {} + \
 && cargo auditable build --release --locked --target "$TARGET" --bins -p publisher -p aggregator -p frontend \
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
