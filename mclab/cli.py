"""The ``mclab`` command: ``doctor``, ``bench``, ``ab``, ``compare``, ``flops``, ``ocr``, ``notebooks``, ``report``.

Each subcommand is a thin layer over a library verb; bad input ends with a one-line
message and exit status 2, a failing notebook with exit status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

__all__ = ["main"]


def _doctor(args: argparse.Namespace) -> int:
    from . import hw

    report = hw.doctor(args.runtimes)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report)
    return 0


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 3,224,224") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive, e.g. 3,224,224")
    return dims


def _bench(args: argparse.Namespace) -> int:
    from . import bench, runtimes

    runner = runtimes.load(args.model, args.runtime, batch=args.batch, threads=args.threads,
                           input_shape=args.input_shape, precision=args.precision)
    x = runner.example_input()
    cfg = bench.BenchConfig(warmup=args.warmup, min_iters=args.iters, min_time_s=args.min_time,
                            threads=args.threads, batch=args.batch)
    result = bench.measure(runner.run, x, config=cfg, label=f"{args.model} on {args.runtime}")
    if args.json:
        print(json.dumps({**result.summary(), "model": args.model, "runtime": args.runtime,
                          "input_shape": list(runner.input_shape), "precision": runner.precision,
                          "requested_precision": args.precision, "info": runner.info}, indent=2, default=str))
    else:
        print(f"{args.model} on {args.runtime} ({runner.precision}, asked {args.precision}), "
              f"input {runner.input_shape}")
        print(result)
    return 0


def _ab(args: argparse.Namespace) -> int:
    from . import bench, runtimes

    a, b = (runtimes.load(m, args.runtime, batch=args.batch, threads=args.threads, input_shape=args.input_shape,
                          precision="fp32") for m in (args.model_a, args.model_b))
    if a.input_shape != b.input_shape:
        raise ValueError(f"the models take different inputs: {a.input_shape} and {b.input_shape}")
    x = a.example_input()
    label_a, label_b = (os.path.basename(m) for m in (args.model_a, args.model_b))
    ab = bench.compare(a.run, b.run, (x,), rounds=args.rounds, calls_per_round=args.calls, label_a=label_a,
                       label_b=label_b)
    if args.json:
        out = {**ab.as_dict(), "runtime": a.runtime, "input_shape": list(a.input_shape),
               "precision": [a.precision, b.precision]}
        if runtimes.provides(a.runtime, "kernels"):  # the convolution kernels that ran (OpenVINO: oneDNN's)
            kernels = runtimes.plugin(a.runtime).kernels
            out["kernels"] = {"a": kernels(a), "b": kernels(b)}
        print(json.dumps(out))
    else:
        print(ab)
    return 0


def _flops(args: argparse.Namespace) -> int:
    from . import flops

    r = flops.count_named(args.model, args.input_shape, args.batch)
    if args.json:
        print(json.dumps({k: v for k, v in r.as_dict().items() if k != "layers" or args.layers}, indent=2))
        return 0
    print(r)
    top = sorted(r.layers, key=lambda row: -row["macs"])[:10]
    print(f"{'layer':40s} {'type':18s} {'MMACs':>10s} {'params':>10s}")
    for row in top:
        print(f"{row['name'][:40]:40s} {row['type'][:18]:18s} {row['macs'] / 1e6:10.2f} {row['params']:10d}")
    print(f"not counted as MACs: {', '.join(f'{k} x{v}' for k, v in r.uncounted.items()) or 'nothing'}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .runtimes import CompareConfig, compare_runtimes

    cfg = CompareConfig(targets=tuple(args.runtimes) if args.runtimes else None, batch=args.batch,
                        threads=args.threads, input_shape=args.input_shape, rounds=args.rounds,
                        calls_per_round=args.calls)
    result = compare_runtimes(args.model, cfg)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result)
    return 0


def _notebooks(args: argparse.Namespace) -> int:
    from .lab import notebooks

    summary = notebooks.run_all(args.dir, only=args.only, fast=args.fast, out_dir=args.out,
                                timeout_s=args.timeout, echo=not args.json)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        print(str(summary).splitlines()[-1])  # the per-notebook lines were echoed as they ran
        for r in summary.runs:
            if not r.ok:
                print(f"notebook {r.name} failed at cell {r.failed_cell}: {r.error} (see {r.output})",
                      file=sys.stderr)
    return 0 if summary.ok else 1


def _ocr(args: argparse.Namespace) -> int:
    from . import ocr

    cfg = ocr.OCRConfig(runtime=args.runtime, precision=args.precision, threads=args.threads,
                        use_cls=not args.no_cls, det_max_scale=args.det_max_scale or None,
                        **({"det_limit_type": "max", "det_limit_side": args.det_max_side} if args.det_max_side else {}))
    pipe = ocr.load(cfg)
    out = []
    for image in args.images:
        res = pipe.read(image)
        if args.json:
            out.append({"image": image, **res.as_dict()})
            continue
        print(f"{image}: {len(res.lines)} line(s), {res.total_ms:.1f} ms "
              f"(detector input {res.det_input[0]}x{res.det_input[1]})")
        for ln in res.lines:
            print(f"  {ln.score:.3f}  {ln.text}")
        print("  stages: " + ", ".join(f"{k} {v:.1f} ms" for k, v in res.stages_ms.items()))
    src = ocr.model_source()
    if args.json:
        print(json.dumps({"config": cfg.as_dict(), "models": pipe.models, "source": src, "images": out}, indent=2))
    else:
        print("models: " + ", ".join(f"{k} {src['models'][k]['generation']} {v['runtime']} {v['precision']}"
                                     for k, v in pipe.models.items()) + f" (rapidocr {src['version']} wheel)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .lab import notebooks, report

    summary = notebooks.run_all(args.dir, only=args.only, fast=args.fast,
                                out_dir=Path(args.out) / "notebooks", timeout_s=args.timeout, echo=True)
    index = report.render_report(summary, args.out)
    print(str(summary).splitlines()[-1])
    print(f"report: {index.resolve()}")
    return 0 if summary.ok else 1


def _add_run_options(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--fast", action="store_true", help="run with FAST = True (CI size)")
    p.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers or names to run")
    p.add_argument("--out", default=out, help=f"output folder (default {out})")
    p.add_argument("--dir", default=None, help="folder of notebooks (default: the kit's notebooks/)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per notebook (default 600)")


def _add_input_shape(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", type=_shape, default=None, help="input shape without batch, e.g. 3,224,224")


def _add_runner_options(p: argparse.ArgumentParser, runtimes: Sequence[str]) -> None:
    """The options of ``runtimes.load`` that ``bench`` and ``ab`` share."""
    p.add_argument("--runtime", default=None,
                   help=f"one of {', '.join(runtimes)}; torch is the default for names, a file's own runtime for "
                        "files (.onnx: onnxruntime, .xml: openvino, ...)")
    p.add_argument("--batch", type=int, default=1, help="items per call (default 1)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for the runtime")
    _add_input_shape(p)


def _add_interleave_options(p: argparse.ArgumentParser, each: str) -> None:
    """How long ``ab`` and ``compare`` time: rounds that interleave the contenders, calls per round."""
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    p.add_argument("--calls", type=int, default=10, help=f"timed calls per {each} per round (default 10)")


def build_parser() -> argparse.ArgumentParser:
    from .runtimes import PRECISIONS, RUNTIMES  # the registry module imports no framework

    parser = argparse.ArgumentParser(prog="mclab", description="Model Compilation Lab helper commands")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="check this machine, its CPU features, GPU and runtimes")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--runtimes", type=lambda s: [n.strip() for n in s.split(",") if n.strip()], default=None,
                   metavar="NAME,NAME", help="probe only these runtimes (default: all; each takes seconds: a fresh "
                   "interpreter imports it)")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("bench", help="measure a model's latency percentiles on one runtime")
    p.add_argument("model", help="a torchvision model name (resnet18) or a path to an .onnx file")
    _add_runner_options(p, RUNTIMES)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="precision to ask the runtime for (default fp32; 'default' lets it choose)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls after the cold one (default 10)")
    p.add_argument("--iters", type=int, default=100, help="at least this many timed calls (default 100)")
    p.add_argument("--min-time", type=float, default=1.0, help="and at least this many seconds (default 1)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_bench)

    p = sub.add_parser("ab", help="two models on one runtime, interleaved: which is faster, with a 95 %% CI")
    p.add_argument("model_a", help="the baseline: a torchvision model name or a path to an .onnx file")
    p.add_argument("model_b", help="the contender (e.g. the INT8 file of the same model)")
    _add_runner_options(p, RUNTIMES)
    _add_interleave_options(p, "model")
    p.add_argument("--json", action="store_true", help="print the result as one line of JSON")
    p.set_defaults(func=_ab)

    p = sub.add_parser("flops", help="count a model's MACs, FLOPs and parameters")
    p.add_argument("model", help="a torchvision model name (resnet50) or a path to an .onnx file")
    _add_input_shape(p)
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--layers", action="store_true", help="include the per-layer table in --json output")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_flops)

    p = sub.add_parser("compare", help="the same model on every runtime: latency, precision, error, size")
    p.add_argument("model", help="a torchvision model name (resnet18)")
    p.add_argument("--runtimes", nargs="+", metavar="RUNTIME[:PRECISION]", default=None,
                   help="e.g. onnxruntime openvino:bf16 (default: every registered runtime at fp32)")
    p.add_argument("--batch", type=int, default=1, help="items per call (default 1)")
    p.add_argument("--threads", type=int, default=None, help="threads for every runtime (default: all usable cores)")
    _add_input_shape(p)
    _add_interleave_options(p, "runtime")
    p.add_argument("--json", action="store_true", help="print the table, manifest and warnings as JSON")
    p.set_defaults(func=_compare)

    p = sub.add_parser("ocr", help="read the text in images with PP-OCRv6 small, the models in the rapidocr wheel "
                                   "(mclab.ocr): lines and stage timings")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, …)")
    p.add_argument("--runtime", default="onnxruntime", help="onnxruntime (default) or openvino")
    p.add_argument("--precision", default="fp32", help="fp32 (default), bf16, fp16 (openvino) or default")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the runtime's)")
    p.add_argument("--det-max-side", type=int, default=None,
                   help="size the detector's input to the image, longer side at most this (default: RapidOCR 3.x's "
                        "sizing, shorter side scaled up to 736 px, but see --det-max-scale; 960 is faster on pages)")
    p.add_argument("--det-max-scale", type=float, default=3.0,
                   help="the most the detector may enlarge an image (default 3; 0: no limit, RapidOCR's own sizing, "
                        "which scales a 37 px line 20x and can lose it)")
    p.add_argument("--no-cls", action="store_true", help="skip the direction classifier (upright text)")
    p.add_argument("--json", action="store_true", help="print lines, boxes, stage timings and models as JSON")
    p.set_defaults(func=_ocr)

    p = sub.add_parser("notebooks", help="execute notebooks headlessly with papermill")
    _add_run_options(p, "build/notebooks")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=_notebooks)

    p = sub.add_parser("report", help="execute every notebook and render HTML pages with an index")
    _add_run_options(p, "build/report")
    p.set_defaults(func=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("bench", "ab") and args.runtime is None:
        first = args.model if args.command == "bench" else args.model_a
        from .runtimes import runtimes_for_file

        args.runtime = (runtimes_for_file(first) or ["torch"])[0]  # a file's own format, else PyTorch
    try:
        return args.func(args)
    except ValueError as e:  # bad input named by the library: one line, no traceback
        print(f"mclab {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
