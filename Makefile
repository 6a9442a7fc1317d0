# mclab — the two commands: `make lab` and `make test`. Both create the virtual environment when it is missing
# and (re)install only when pyproject.toml or constraints.txt changed, or when the environment's Python changed.
#
# The interpreter: `make test PYTHON=python3.12` (a name or a path) uses that one; otherwise the one the existing
# environment was made with; otherwise the newest supported CPython found on PATH or under pyenv
# (`$(pyenv root)/versions/3.1x.*`), newest first. `VENV=.venv-3.13` keeps one
# environment per Python side by side (.ci/run does).
SUPPORTED_PYTHONS := 3.13 3.12 3.11
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.mclab-installed
PYSTAMP  := $(VENV)/.mclab-python
LAB_IP   ?= 127.0.0.1
LAB_PORT ?= 8888
LAB_TOKEN ?=
ARCH     := $(shell uname -m)
# llama-cpp-python compiles llama.cpp (about 2 minutes on 2 cores). On x86-64 it is built for AVX2/FMA/F16C rather
# than -march=native, so the wheel stays valid on every x86-64 lab machine (AVX2 and AVX-512 ones); on other machines
# (ARM) llama.cpp's own defaults apply. The multimodal library is not needed. Override with
# `make install LLAMA_CMAKE_ARGS=...` (e.g. -DGGML_NATIVE=ON).
LLAMA_X86_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF $(if $(filter x86_64 amd64,$(ARCH)),$(LLAMA_X86_ARGS))
# Always added: llama.cpp's common library is left out (cmake/llama-no-common.cmake says why). Measured on 2 cores:
# the wheel compiled in 131 s without it, 288 s with it (the same sources, one after the other).
LLAMA_NO_COMMON := -DCMAKE_PROJECT_llama.cpp_INCLUDE=$(CURDIR)/cmake/llama-no-common.cmake
# The wheel (py3-none: ctypes, no Python ABI) works on every Python, but pip's own cache keys a compiled wheel by the
# Python minor version, so each new environment would compile again. make keeps it here instead, one folder per
# LLAMA_CMAKE_ARGS, and every later environment (another Python, another VENV, another clone) installs it in seconds.
LLAMA_WHEELS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mclab/llama-wheels/$(firstword $(shell echo '$(LLAMA_CMAKE_ARGS) without-common' | cksum))
LLAMA_VERSION := $(shell sed -n 's/^llama[-_.]cpp[-_.]python==\([^ #]*\).*/\1/ip' constraints.txt)
# The installer: uv (https://docs.astral.sh/uv/), from PATH when there is one, else the uv that constraints.txt pins,
# put into the new environment by pip first (a few seconds). `make install INSTALLER=pip` uses pip alone. Every module
# is compiled to bytecode at install time, as pip does: without it, a machine with PYTHONDONTWRITEBYTECODE=1 (the lab
# image sets it) compiles torch and TensorFlow from source in every new process (the suite: 1540 s against 1058 s).
# While llama.cpp compiles, uv downloads and unpacks everything else without compiling bytecode; Python's compileall
# then compiles the environment, less the packages' own test folders (almost a quarter of the files, shipped for the
# packages' own tests). Measured on 2 cores, first installs on Python 3.13: 192 s, against 210 s one step after the
# other; uv compiling bytecode while llama.cpp compiled took 214 s.
INSTALLER ?= uv
UV := $(or $(shell command -v uv 2>/dev/null),$(abspath $(BIN))/uv)
ifeq ($(INSTALLER),uv)
PIP_INSTALL = $(UV) pip install --compile-bytecode --python $(BIN)/python
else ifeq ($(INSTALLER),pip)
PIP_INSTALL = $(BIN)/python -m pip install --disable-pip-version-check
else
$(error INSTALLER=$(INSTALLER): use uv or pip)
endif
INSTALL_FAILED = { tail -n 40 $(VENV)/pip.log; echo "$(INSTALLER) install failed; full log in $(VENV)/pip.log"; exit 1; }
# jupyter refuses to run as root unless told; containers and CI boxes often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

# ---- choosing the interpreter (nothing here runs pip; a few `python -c` calls at most)
PYENV_ROOT_DIR := $(shell pyenv root 2>/dev/null)
# the interpreter's real path when $(1) runs and is a supported CPython, else nothing (a pyenv shim for a version
# pyenv has not selected fails here, and the same version is then looked up under $(pyenv root)/versions)
_supported = $(shell $(1) -c 'import sys, platform; ok = platform.python_implementation() == "CPython" and \
	(3, 11) <= sys.version_info[:2] <= (3, 13); print(sys.executable if ok else "")' 2>/dev/null)
_under_pyenv = $(if $(PYENV_ROOT_DIR),$(sort $(wildcard $(PYENV_ROOT_DIR)/versions/$(1).*/bin/python$(1))))
ifneq ($(strip $(PYTHON)),)
PYTHON_HOW := given by PYTHON=$(PYTHON)
PYTHON_EXE := $(firstword $(foreach c,$(PYTHON) $(call _under_pyenv,$(patsubst python%,%,$(notdir $(PYTHON)))),\
	$(call _supported,$(c))))
else ifneq ($(call _supported,$(BIN)/python),)
# an existing environment keeps its Python until PYTHON= names another (no surprise rebuild when a newer one appears)
PYTHON_HOW := the one $(VENV) was made with; PYTHON=... changes it
PYTHON_EXE := $(call _supported,$(BIN)/python)
else
PYTHON_HOW := the newest supported Python found on PATH or under pyenv
PYTHON_EXE := $(firstword $(foreach v,$(SUPPORTED_PYTHONS),$(foreach c,python$(v) $(call _under_pyenv,$(v)),\
	$(call _supported,$(c)))))
endif
define NO_PYTHON
mclab runs on CPython $(subst $(eval) ,$(comma) ,$(SUPPORTED_PYTHONS)); $(if $(strip $(PYTHON)),PYTHON=$(PYTHON) is not one of \
them ($(or $(shell $(PYTHON) --version 2>&1 | head -n 1),it does not run)).,none was found on PATH or under pyenv.)
Get one, then run make again (or name it: make test PYTHON=/path/to/python3.13):
  - pyenv:  pyenv install 3.13   (https://github.com/pyenv/pyenv; make finds it under $$(pyenv root)/versions)
  - your distribution:  apt install python3.12-venv (Ubuntu 24.04), dnf install python3.13 (Fedora), brew install python@3.13
  - python.org:  https://www.python.org/downloads/
endef
comma := ,
export NO_PYTHON

.PHONY: help install which-python kernel lab test unit lint e2e bench report clean assignments grade FORCE

help:
	@echo "make lab     install everything and start JupyterLab on notebooks/ (LAB_IP, LAB_PORT, LAB_TOKEN)"
	@echo "make test    install everything and run unit tests and every notebook (FAST mode)"
	@echo "make unit    unit tests only (skips the notebook runs)"
	@echo "make lint    ruff over the whole tree (rules in pyproject.toml)"
	@echo "make e2e     the learner's path in headless Chromium: JupyterLab, every slider, the HTML report (needs Debian's chromium)"
	@echo "make bench   benchmarks of the kit's own harness (reports ratios, never fails on speed)"
	@echo "make report  execute every notebook into build/report and render HTML with an index (FAST=1 for quick)"
	@echo "make clean   remove build/ (keeps .venv)"
	@echo "make which-python  the Python make would use (choose with PYTHON=...; VENV=... for another environment)"
	@echo "make assignments  nbgrader student releases of every notebook into build/assignments (no solutions, no hidden tests)"
	@echo "make grade SUBMISSIONS=DIR  autograde DIR/<student>/<assignment>/<notebook>.ipynb in FAST mode -> build/grades"

# The environment remembers its Python: $(PYSTAMP) holds the version and prefix of the interpreter that made it
# (an environment from before the stamp is asked directly). Another PYTHON rebuilds the environment from scratch;
# the same one leaves it, and the stamp's date, alone.
$(PYSTAMP): FORCE
	@if [ -z "$(PYTHON_EXE)" ]; then echo "$$NO_PYTHON" >&2; exit 1; fi
	@ask='import sys; print(sys.version.split()[0], sys.base_prefix)'; want="$$($(PYTHON_EXE) -c "$$ask")"; \
	have="$$(cat $@ 2>/dev/null || $(BIN)/python -c "$$ask" 2>/dev/null)"; \
	if [ "$$have" != "$$want" ]; then \
		if [ -d $(VENV) ]; then echo "$(VENV) was made with Python $${have:-(unknown)}; rebuilding it with $$want"; fi; \
		rm -rf $(VENV) && $(PYTHON_EXE) -m venv $(VENV) || exit 1; \
	fi; \
	[ "$$(cat $@ 2>/dev/null)" = "$$want" ] || echo "$$want" >$@; \
	echo "Python: $(PYTHON_EXE) ($$want), $(PYTHON_HOW); environment $(VENV)"

$(STAMP): pyproject.toml constraints.txt $(PYSTAMP)
	@echo "Installing mclab and its pinned dependencies into $(VENV) (the first time about 3 minutes on 2 quiet cores, more under load; 9 GB; log: $(VENV)/pip.log)"
	@$(if $(filter uv,$(INSTALLER)),[ -x "$(UV)" ] || $(BIN)/python -m pip install --disable-pip-version-check \
		-c constraints.txt uv >$(VENV)/uv.log 2>&1 || { tail -n 20 $(VENV)/uv.log; \
		echo "installing uv into $(VENV) failed (log: $(VENV)/uv.log); make install INSTALLER=pip uses pip alone"; exit 1; })
	@echo "Installer: $(INSTALLER)$(if $(filter uv,$(INSTALLER)), ($(UV)))"
	@: >$(VENV)/pip.log; \
	if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-py3-none-*.whl >/dev/null 2>&1; then \
		echo "Compiling llama.cpp for llama-cpp-python $(LLAMA_VERSION) into $(LLAMA_WHEELS) (about 2 minutes on 2 cores, once: later environments reuse it)$(if $(filter uv,$(INSTALLER)),; the other packages download meanwhile)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) $(LLAMA_NO_COMMON)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip wheel --disable-pip-version-check --no-deps \
			-w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION) >$(VENV)/llama-build.log 2>&1 & compiling=$$!; \
		$(if $(filter uv,$(INSTALLER)),fetched=1; echo llama-cpp-python >$(VENV)/llama-exclude.txt; \
		$(UV) pip install --python $(BIN)/python --excludes $(VENV)/llama-exclude.txt -c constraints.txt -e '.[dev]' >$(VENV)/pip.log 2>&1 \
			|| { kill $$compiling; $(INSTALL_FAILED); };) \
		wait $$compiling || { tail -n 40 $(VENV)/llama-build.log; echo "compiling llama-cpp-python failed; full log in $(VENV)/llama-build.log"; exit 1; }; \
	fi; \
	$(PIP_INSTALL) --find-links $(LLAMA_WHEELS) -c constraints.txt -e '.[dev]' >>$(VENV)/pip.log 2>&1 \
		|| $(INSTALL_FAILED) \
	$(if $(filter uv,$(INSTALLER)),; if [ -n "$$fetched" ]; then $(BIN)/python -m compileall -qq -j 0 -x '/tests?/' \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >>$(VENV)/pip.log 2>&1 || true; fi)
	@touch $@

which-python:
	@if [ -z "$(PYTHON_EXE)" ]; then echo "$$NO_PYTHON" >&2; exit 1; fi
	@echo "$(PYTHON_EXE) ($(PYTHON_HOW))"

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
	$(BIN)/python -m pytest --durations=30

unit: install
	$(BIN)/python -m pytest -m "not notebooks" --durations=20

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

FORCE:
# the instructor's workflow (README, For teachers): nbgrader offline, course directory under build/
assignments: install
	$(BIN)/python -m mclab.lab.grading assignments --out build

grade: install
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=DIR  (DIR/<student>/<assignment>/<notebook>.ipynb)"; exit 1; }
	$(BIN)/python -m mclab.lab.grading grade "$(SUBMISSIONS)" --out build/grades
