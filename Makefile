# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_PORT ?= 18080

.PHONY: install demo test unit integration soak fuzz lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,aio,progress]'
	touch $(STAMP)

install: $(STAMP)

# Starts the local SageMaker-compatible endpoint in its own process, runs the
# quickstart against it through boto3, and stops it again.
demo: $(STAMP)
	@echo "make demo: sm-llm local serve on 127.0.0.1:$(DEMO_PORT) (a local echo model, no AWS), then examples/quickstart.py"
	@$(VENV)/bin/sm-llm local serve --port $(DEMO_PORT) > $(VENV)/demo-server.log 2>&1 & \
	server=$$!; trap 'kill $$server 2>/dev/null' EXIT; \
	for i in $$(seq 1 100); do \
	  $(PY) -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$(DEMO_PORT)/ping', timeout=1)" 2>/dev/null && break; \
	  kill -0 $$server 2>/dev/null || { cat $(VENV)/demo-server.log; exit 1; }; \
	  sleep 0.1; \
	done; \
	AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:$(DEMO_PORT) AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	  $(PY) examples/quickstart.py

# Everything: two xdist workers taking whole modules (a module's fixtures are built once; the
# longest modules go first, see tests/conftest.py), then the timing-sensitive tests (marker
# `serial`) alone. Both runs always happen; either failing fails the target.
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadscope --no-loadscope-reorder -m "not serial"; parallel=$$?; \
	$(PY) -m pytest -q -p no:cacheprovider -m serial; serial=$$?; \
	echo "make test: parallel run exit $$parallel, serial run exit $$serial"; \
	test $$parallel -eq 0 && test $$serial -eq 0

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

# The full fault soak (1,000 mixed requests) and the long hypothesis profile.
soak: $(STAMP)
	$(PY) -m pytest -q -s tests/soak

fuzz: $(STAMP)
	SM_LLM_HYPOTHESIS_EXAMPLES=5000 $(PY) -m pytest -q tests/unit/test_fuzz.py tests/unit/test_decoding_props.py

lint: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	for script in bench/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache
