# mclab — the two commands: `make lab` and `make test`. Both create .venv when it is missing
# and (re)install only when pyproject.toml or constraints.txt changed.
PYTHON   ?= python3.11
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.mclab-installed
LAB_IP   ?= 127.0.0.1
LAB_PORT ?= 8888
LAB_TOKEN ?=
# llama-cpp-python compiles llama.cpp (about 5 minutes on 2 cores, once per environment). Built for AVX2/FMA/F16C
# rather than -march=native, so a wheel in pip's cache stays valid on every x86-64 lab machine (AVX2 and AVX-512 ones);
# the multimodal library is not needed. Override with `make install LLAMA_CMAKE_ARGS=...` (e.g. -DGGML_NATIVE=ON).
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
# jupyter refuses to run as root unless told; containers and CI boxes often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help install kernel lab test unit lint e2e bench report clean assignments grade

help:
	@echo "make lab     install everything and start JupyterLab on notebooks/ (LAB_IP, LAB_PORT, LAB_TOKEN)"
	@echo "make test    install everything and run unit tests and every notebook (FAST mode)"
	@echo "make unit    unit tests only (skips the notebook runs)"
	@echo "make lint    ruff over the whole tree (rules in pyproject.toml)"
	@echo "make e2e     the learner's path in headless Chromium: JupyterLab, every slider, the HTML report (needs Debian's chromium)"
	@echo "make bench   benchmarks of the kit's own harness (reports ratios, never fails on speed)"
	@echo "make report  execute every notebook into build/report and render HTML with an index (FAST=1 for quick)"
	@echo "make clean   remove build/ (keeps .venv)"
	@echo "make assignments  nbgrader student releases of every notebook into build/assignments (no solutions, no hidden tests)"
	@echo "make grade SUBMISSIONS=DIR  autograde DIR/<student>/<assignment>/<notebook>.ipynb in FAST mode -> build/grades"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	@echo "Installing mclab and its pinned dependencies into $(VENV) (first time: about 8 minutes, 5 of them compiling llama.cpp; log: $(VENV)/pip.log)"
	@CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt -e '.[dev]' >$(VENV)/pip.log 2>&1 \
		|| { tail -n 40 $(VENV)/pip.log; echo "pip install failed; full log in $(VENV)/pip.log"; exit 1; }
	@touch $@

install: $(STAMP)

kernel: install
	$(BIN)/python -m ipykernel install --user --name mclab --display-name "Python 3 (mclab)" >/dev/null
	@echo "Jupyter kernel 'mclab' registered for $(abspath $(VENV))"

lab: kernel
	@echo "Starting JupyterLab on notebooks/ ($(LAB_IP), port $(LAB_PORT)); open the URL with the token that it prints below"
	exec $(BIN)/jupyter lab --no-browser $(ROOT_FLAG) --notebook-dir=notebooks \
		--ServerApp.ip=$(LAB_IP) --ServerApp.port=$(LAB_PORT) --ServerApp.port_retries=0 \
		$(if $(LAB_TOKEN),--IdentityProvider.token=$(LAB_TOKEN))

test: install
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest -m "not notebooks"

lint: install
	$(BIN)/ruff check .

# tests/e2e is left out of `make test`; screenshots, widgets.json and the report go to build/e2e/
e2e: install
	$(BIN)/python -m pytest tests/e2e

bench: install
	$(BIN)/python benchmarks/harness.py build/bench/harness.json

report: install
	$(BIN)/mclab report --out build/report $(if $(FAST),--fast)

clean:
	rm -rf build

# the instructor's workflow (README, For teachers): nbgrader offline, course directory under build/
assignments: install
	$(BIN)/python -m mclab.lab.grading assignments --out build

grade: install
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=DIR  (DIR/<student>/<assignment>/<notebook>.ipynb)"; exit 1; }
	$(BIN)/python -m mclab.lab.grading grade "$(SUBMISSIONS)" --out build/grades
