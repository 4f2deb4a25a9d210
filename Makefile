# The two commands: `make run` brings the appliance up, `make test` installs what is missing and runs
# the whole suite offline. `make bench` runs the side-by-side benchmarks.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
# Tests build the tiny models once here and every test reuses them.
TEST_MODELS := var/test-models

.PHONY: install run test test-unit bench bench-gateway bench-gateway-paced bench-turn-cost bench-trust bench-retrieval bench-retrieval-calibration bench-intents bench-voice bench-sip bench-primitives lint clean

install:
	bash scripts/install.sh $(PROFILE)

run: install
	$(VENV)/bin/enclave up

test: install
	ENCLAVE_MODELS_DIR=$(TEST_MODELS) bash scripts/offline.sh $(VENV)/bin/enclave models build-tiny
	ENCLAVE_MODELS_DIR=$(abspath $(TEST_MODELS)) ENCLAVE_TEST_NETNS=1 RAY_USAGE_STATS_ENABLED=0 \
	  bash scripts/offline.sh $(PY) -m pytest -ra -p no:cacheprovider $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest -ra tests/unit

bench: install
	$(PY) scripts/bench/serving.py
	$(PY) scripts/bench/gateway.py
	$(PY) scripts/bench/trust.py
	$(PY) scripts/bench/intents.py
	$(PY) scripts/bench/primitives.py

bench-gateway: install
	$(PY) scripts/bench/gateway.py

bench-gateway-paced: install
	$(PY) scripts/bench/gateway.py --upstream paced

bench-turn-cost: install
	$(PY) scripts/bench/turn_cost.py

bench-trust: install
	$(PY) scripts/bench/trust.py

bench-retrieval: install
	$(PY) scripts/bench/retrieval.py

bench-retrieval-calibration: install
	$(PY) scripts/bench/retrieval_calibration.py

bench-sip: install
	$(PY) scripts/bench/sip.py

bench-voice: install
	$(PY) scripts/bench/voice.py $(if $(GATEWAY_URL),--gateway-url $(GATEWAY_URL))

bench-primitives: install
	$(PY) scripts/bench/primitives.py

bench-intents: install
	$(PY) scripts/bench/intents.py $(if $(SERVING_URL),--serving-url $(SERVING_URL))

lint:
	$(VENV)/bin/ruff check gateway serving models deploy tests scripts

clean:
	rm -rf $(TEST_MODELS)
