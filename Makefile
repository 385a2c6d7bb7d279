# Common tasks; `make help` lists them.
.PHONY: help demo test lint bench fuzz

help: ## List targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

demo: ## Import the example dumps and show the diff
	cargo run -p heapfleet -- demo

test: ## Run every test (installs Ruby, heapy, PostgreSQL, Java, Maven if missing; starts servers)
	scripts/test.sh

lint: ## Formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: ## Parse benchmark: heapfleet vs heapy on a generated ~600 MB dump
	cargo bench -p heapfleet-tests --bench parse

fuzz: ## Fuzz the parser for 5 minutes (nightly + cargo-fuzz)
	cd crates/dump/fuzz && cargo +nightly fuzz run parse_dump -- -max_total_time=300
