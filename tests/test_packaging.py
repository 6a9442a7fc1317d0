"""The three files that describe the environment agree, and `import mclab` stays light."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO

HEAVY = ("torch", "tensorflow", "openvino", "onnxruntime", "onnx", "matplotlib", "pandas")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


# Extras for hardware this machine may lack (`pip install -e .[gpu]`): pinned, but neither installed by
# `make` nor listed in environment.yml.
HARDWARE_EXTRAS = ("gpu",)


def _declared(hardware: bool = False) -> set[str]:
    proj = _pyproject()["project"]
    names = list(proj["dependencies"]) + [d for extra, ds in proj["optional-dependencies"].items()
                                          if hardware or extra not in HARDWARE_EXTRAS for d in ds]
    return {_norm(re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0]) for d in names}


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt line {line!r} is not an exact pin (name==version)"
            pins[_norm(name)] = version
    return pins


def _environment_pip() -> tuple[set[str], list[str]]:
    """Package names and option lines from environment.yml's pip section (no YAML lib needed)."""
    text = (REPO / "environment.yml").read_text()
    section = text.split("- pip:", 1)[1]
    items = [m.group(1).strip() for m in re.finditer(r"^\s+- (.+)$", section, re.M)]
    options = [i for i in items if i.startswith("-")]
    return {_norm(i) for i in items if not i.startswith("-")}, options


def test_every_declared_package_is_pinned():
    pins = _pins()
    missing = sorted(_declared(hardware=True) - set(pins))
    assert not missing, f"pyproject.toml names packages that constraints.txt does not pin: {missing}"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_environment_yml_names_the_same_packages():
    names, options = _environment_pip()
    assert names == _declared(), (f"environment.yml vs pyproject.toml differ: only in environment.yml "
                                  f"{sorted(names - _declared())}, only in pyproject {sorted(_declared() - names)}")
    assert "-c constraints.txt" in options and "-e .[dev]" in options


# ----------------------------------------------------------------------------- which Pythons


def _supported() -> list[str]:
    """The minor versions pyproject.toml's requires-python allows (">=3.11,<3.14" -> 3.11, 3.12, 3.13)."""
    spec = _pyproject()["project"]["requires-python"]
    low, high = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", spec).groups()
    return [f"3.{m}" for m in range(int(low), int(high))]


def test_the_supported_pythons_agree_everywhere():
    versions = _supported()
    assert versions == ["3.11", "3.12", "3.13"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^SUPPORTED_PYTHONS := (.+)$", makefile, re.M).group(1).split() == versions[::-1]  # newest first
    assert "(3, 11) <= sys.version_info[:2] <= (3, 13)" in makefile
    conda = re.search(r"^\s+- python=(3\.\d+)$", (REPO / "environment.yml").read_text(), re.M)
    assert conda and conda.group(1) in versions, "environment.yml must name a supported Python"
    assert _pyproject()["tool"]["ruff"]["target-version"] == "py" + versions[0].replace(".", "")
    ci = (REPO / ".ci" / "run").read_text()
    assert all(v in ci for v in versions), f".ci/run must run every supported Python {versions}"
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in versions


def _tools(tmp_path, *names: str):
    """A PATH folder with only the tools the Makefile's parse step calls (no Python, no pyenv)."""
    import shutil

    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    for name in ("sh", "id", "cat", "head", "sed", "cksum", "uname", "rm", "ls", "nproc", *names):
        (bin_ / name).symlink_to(shutil.which(name))
    return bin_


def _fake(bin_, name: str, body: str) -> None:
    (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_ / name).chmod(0o755)


def _make(*args: str, home, path=None) -> subprocess.CompletedProcess:
    """`make ARGS` in the repository with only PATH (``path`` or this one), LC_ALL and HOME (``home``) set."""
    import os
    import shutil

    env = {"HOME": str(home), "LC_ALL": "C", "PATH": str(path) if path else os.environ["PATH"]}
    return subprocess.run([shutil.which("make"), "--no-print-directory", "-C", str(REPO), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_make_picks_the_newest_supported_python_and_says_so(tmp_path):
    bin_ = _tools(tmp_path)
    for v in ("3.11", "3.12"):  # a fake interpreter answers make's question with its own path
        _fake(bin_, f"python{v}", 'echo "$0"')
    out = _make("which-python", f"VENV={tmp_path}/v", path=bin_, home=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"{bin_}/python3.12 (the newest supported Python found on " \
        "PATH or under pyenv)", out.stdout + out.stderr
    out = _make("which-python", f"VENV={tmp_path}/v", f"PYTHON={bin_}/python3.11", path=bin_, home=tmp_path)
    assert out.stdout.startswith(f"{bin_}/python3.11 (given by PYTHON="), out.stdout + out.stderr


def test_make_without_a_supported_python_says_which_work_and_how_to_get_one(tmp_path):
    bin_ = _tools(tmp_path)
    _fake(bin_, "python3.9", 'case "$1" in --version) echo "Python 3.9.18";; *) echo "";; esac')
    for args in ((), ("PYTHON=python3.9",), ("PYTHON=/no/such/python",)):
        out = _make("install", "VENV=" + str(tmp_path / "v"), *args, path=bin_, home=tmp_path)
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert "mclab runs on CPython 3.13, 3.12, 3.11" in out.stderr, out.stderr
        assert "pyenv install 3.13" in out.stderr and "python.org" in out.stderr
        assert not (tmp_path / "v").exists()
    out = _make("which-python", f"VENV={tmp_path}/v", "PYTHON=python3.9", path=bin_, home=tmp_path)
    assert "PYTHON=python3.9 is not one of them (Python 3.9.18)" in out.stderr


def test_the_environment_remembers_its_python(tmp_path):
    """The stamp holds the interpreter's version and prefix; another one rebuilds the environment, the same one (or
    none named) leaves it alone."""
    venv, python = tmp_path / "v", sys.executable
    first = _make(f"{venv}/.mclab-python", f"VENV={venv}", f"PYTHON={python}", home=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    stamp = venv / ".mclab-python"
    want = f"{sys.version.split()[0]} {sys.base_prefix}"
    assert stamp.read_text().strip() == want and (venv / "bin" / "python").exists()
    assert f"Python: {python} ({want}), given by PYTHON=" in first.stdout
    before = stamp.stat().st_mtime_ns
    again = _make(f"{venv}/.mclab-python", f"VENV={venv}", f"PYTHON={python}", home=tmp_path)
    assert "rebuilding" not in again.stdout and stamp.stat().st_mtime_ns == before
    kept = _make("which-python", f"VENV={venv}", home=tmp_path)  # no PYTHON=: the environment keeps its Python
    assert kept.stdout.strip() == f"{venv}/bin/python (the one {venv} was made with; PYTHON=... changes it)"
    stamp.write_text("3.0.0 /elsewhere\n")  # as if another Python had made it
    (venv / "marker").write_text("")
    changed = _make(f"{venv}/.mclab-python", f"VENV={venv}", f"PYTHON={python}", home=tmp_path)
    assert f"was made with Python 3.0.0 /elsewhere; rebuilding it with {want}" in changed.stdout, changed.stdout
    assert stamp.read_text().strip() == want and not (venv / "marker").exists()


def test_llama_cpp_gets_x86_flags_only_on_x86_64(tmp_path):
    """`make -n install` with a fake `uname -m`: AVX2/FMA/F16C/BMI2 on x86-64, llama.cpp's defaults elsewhere."""
    import os

    for machine, x86 in (("x86_64", True), ("aarch64", False), ("arm64", False)):
        bin_ = tmp_path / machine
        bin_.mkdir()
        _fake(bin_, "uname", f'echo {machine}')
        out = _make("-n", "install", f"VENV={tmp_path}/v", f"PYTHON={sys.executable}",
                    path=f"{bin_}:{os.environ['PATH']}", home=tmp_path)
        assert out.returncode == 0, out.stderr
        cmake = re.search(r'CMAKE_ARGS="([^"]*)"', out.stdout).group(1)
        assert "-DLLAVA_BUILD=OFF" in cmake
        include = re.search(r"-DCMAKE_PROJECT_llama\.cpp_INCLUDE=(\S+)", cmake).group(1)  # common/ left out
        assert Path(include).read_text().count("set(LLAMA_BUILD_COMMON OFF)") == 1
        assert all((flag in cmake) == x86 for flag in ("-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
                                                       "-DGGML_BMI2=ON", "-DGGML_NATIVE=OFF")), (machine, cmake)


def test_make_installs_with_uv_from_path_or_its_own_else_pip_when_asked(tmp_path):
    """`make -n install`: uv from PATH when PATH has it, else the pinned uv put into the environment by pip first;
    INSTALLER=pip uses pip alone, and any other value is named."""
    plain = _tools(tmp_path)  # no uv here
    with_uv = tmp_path / "with-uv"
    with_uv.mkdir()
    _fake(with_uv, "uv", "exit 0")
    venv = tmp_path / "v"
    bootstrap = f"{venv}/bin/python -m pip install --disable-pip-version-check -c constraints.txt uv"
    for path, extra, uv in ((plain, (), f"{venv}/bin/uv"), (f"{with_uv}:{plain}", (), f"{with_uv}/uv"),
                            (f"{with_uv}:{plain}", ("INSTALLER=pip",), None)):
        out = _make("-n", "install", f"VENV={venv}", f"PYTHON={sys.executable}", *extra, path=path, home=tmp_path)
        assert out.returncode == 0, out.stderr
        uv_line = f"{uv} pip install --compile-bytecode --python {venv}/bin/python --find-links" in out.stdout
        pip_line = f"{venv}/bin/python -m pip install --disable-pip-version-check --find-links" in out.stdout
        assert (uv_line, pip_line) == (uv is not None, uv is None), out.stdout
        assert (f'[ -x "{venv}/bin/uv" ] || {bootstrap}' in out.stdout) == (uv == f"{venv}/bin/uv"), out.stdout
        # llama.cpp compiles in the background; uv fetches everything else meanwhile (no bytecode: compileall
        # after), pip waits for it
        assert "llama-cpp-python==" in out.stdout and "& compiling=$!" in out.stdout and "wait $compiling" in out.stdout
        fetch = f"{uv} pip install --python {venv}/bin/python --excludes {venv}/llama-exclude.txt -c constraints.txt"
        assert (fetch in out.stdout, "compileall -qq -j 0 -x '/tests?/'" in out.stdout) == (uv is not None,) * 2
    out = _make("-n", "install", f"VENV={venv}", f"PYTHON={sys.executable}", "INSTALLER=conda", path=plain,
                home=tmp_path)
    assert out.returncode != 0 and "INSTALLER=conda: use uv or pip" in out.stderr, out.stderr


def test_installed_versions_match_the_pins():
    from importlib import metadata

    from packaging.version import Version

    pins = _pins()
    wrong = {}
    for name in _declared():
        installed = metadata.version(name)
        if Version(installed).public != Version(pins[name]).public:
            wrong[name] = (installed, pins[name])
    assert not wrong, f"installed != pinned: {wrong}"


def test_console_script_and_make_targets():
    assert _pyproject()["project"]["scripts"]["mclab"] == "mclab.cli:main"
    makefile = (REPO / "Makefile").read_text()
    for target in ("lab:", "test:", "report:", "install:"):
        assert re.search(rf"^{target}", makefile, re.M), f"Makefile has no {target} target"
    assert "make test" in (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert readme.index("make lab") < 1500 and readme.index("make test") < 1500, \
        "README must lead with the two commands"


def _import_cost(statement: str) -> tuple[float, str]:
    """Seconds ``statement`` takes in a fresh interpreter, and the heavy modules it left loaded."""
    code = (f"import sys, time; t = time.perf_counter(); {statement}; dt = time.perf_counter() - t; "
            f"print(dt); print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    return float(out[0]), out[1]


def test_import_mclab_is_fast_and_light():
    """The package's ``__init__`` imports only ``record`` (tests/test_imports.py checks that statically)."""
    seconds, heavy = _import_cost("import mclab")
    assert heavy == "", f"import mclab pulled in heavy modules: {heavy}"
    assert seconds < 1.0, f"import mclab took {seconds:.2f} s (limit 1 s)"


def test_the_command_line_and_the_runtime_registry_import_no_framework():
    """`mclab --help` builds its parser from the runtime registry; neither loads a framework."""
    seconds, heavy = _import_cost("import mclab.cli, mclab.runtimes; mclab.cli.build_parser()")
    assert heavy == "", f"the mclab command and runtime registry pulled in heavy modules: {heavy}"
    assert seconds < 1.0, f"importing the mclab command took {seconds:.2f} s (limit 1 s)"
