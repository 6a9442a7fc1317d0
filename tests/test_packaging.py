"""The three files that describe the environment agree, and `import mclab` stays light."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib

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
    assert "python=3.11" in (REPO / "environment.yml").read_text()


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
