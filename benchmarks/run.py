"""symdiff benchmark (issue 4): W1..W7 against hand-written NumPy and the peers, side by side.

    python -m benchmarks.run [--quick] [--only W1,W3] [--json out.json]
                                   [--peers jax,torch,autograd,pytensor,casadi|none]
                                   [--repeats N] [--blas-threads N]

Prints one table (median per call, ratio against the workload's reference, max relative error
against the reference values, one-time setup cost, workload-specific numbers), then the issue's
targets as met / missed, and writes every number as JSON (default ``bench_results.json`` in the
current directory). Peers are optional: one that is not installed shows as "not installed".
``--quick`` uses small sizes and few repeats (a smoke run, not a measurement).
``--blas-threads 1`` pins NumPy's BLAS, PyTorch and XLA to one thread: far steadier medians on a
machine that other work shares.
Exit status 1 when a symdiff result disagrees with the reference or symdiff raised.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from . import common
from .common import Config, Results

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9")


def _runner(name: str):
    from . import (w1_mlp, w2_deep, w3_nested, w4_bigdag, w6_elementwise, w7_tiny, w8_hessian,
                   w9_conv)
    return {"W1": w1_mlp.run_w1, "W2": w2_deep.run, "W3": w3_nested.run, "W4": w4_bigdag.run,
            "W5": w1_mlp.run_w5, "W6": w6_elementwise.run, "W7": w7_tiny.run,
            "W8": w8_hessian.run, "W9": w9_conv.run}[name]


# ---------------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------------
def fmt_time(t) -> str:
    if t is None:
        return "-"
    if t < 1e-6:
        return f"{t * 1e9:.0f} ns"
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def fmt_ratio(r) -> str:
    if r is None:
        return "-"
    return f"{r:.2f}x" if r < 100 else f"{r:.0f}x"


def fmt_err(e) -> str:
    if e is None:
        return "-"
    if not math.isfinite(e):
        return "inf"
    return "0" if e == 0 else f"{e:.0e}"


def _bytes(b) -> str:
    return f"{b / 1024:.0f} KiB" if b < 1 << 20 else f"{b / (1 << 20):.1f} MiB"


# workload-specific numbers shown in the notes column: (key, label, formatter)
_NOTES = [
    ("value_and_grad_over_forward", "v+g/fwd", fmt_ratio),
    ("peak_bytes", "peak", _bytes),
    ("peak_over_handwritten", "peak/hand", fmt_ratio),
    ("forward_nodes", "fwd nodes", str),
    ("grad_graph_nodes", "grad nodes", str),
    ("grad_over_forward", "grad/fwd", fmt_ratio),
    ("hvp_graph_nodes", "hvp nodes", str),
    ("code_lines", "stmts", str),
    ("hvp_over_own_value_grad", "HVP/own v+g", fmt_ratio),
    ("build_grad_compile_s", "build+grad+compile", fmt_time),
    ("build_s", "build", fmt_time),
    ("grad_s", "grad", fmt_time),
    ("compile_s", "compile", fmt_time),
    ("first_call_s", "first call", fmt_time),
    ("jax_first_call_over_this", "JAX 1st call/this", fmt_ratio),
    ("growth_vs_prev", "growth vs prev size", fmt_ratio),
    ("diff_s", "diff", fmt_time),
    ("count_ops", "count_ops", str),
    ("lambdify_s", "lambdify", fmt_time),
    ("eval_per_call_s", "eval/call", fmt_time),
    ("over_sympy_lambdify", "/lambdify", fmt_ratio),
    ("hessian_nodes", "hessian nodes", str),
    ("optimized_nodes", "optimized", str),
    ("over_jax", "/JAX", fmt_ratio),
    ("setup_over_jax_first_call", "setup/JAX 1st call", fmt_ratio),
    ("total_s", "total", fmt_time),
    ("peak_over_hessian", "peak/Hessian size", fmt_ratio),
]


def notes(row) -> str:
    parts = []
    if row.status != "ok":
        parts.append(row.status)
    for key, label, fmt in _NOTES:
        v = row.extra.get(key)
        if v is not None:
            parts.append(f"{label} {fmt(v)}")
    return "; ".join(parts)


def format_table(results: Results) -> str:
    header = ("workload", "case", "implementation", "median", "min", "ratio", "min ratio", "vs",
              "max err", "setup", "notes")
    lines = []
    for r in results.rows:
        setup = r.extra.get("setup_s")
        lines.append((r.workload, r.case, r.impl, fmt_time(r.time),
                      fmt_time(r.extra.get("min_s")), fmt_ratio(r.ratio),
                      fmt_ratio(r.extra.get("min_ratio")),
                       r.ref or "-", fmt_err(r.err), fmt_time(setup), notes(r)))
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) if lines else len(header[i])
              for i in range(len(header) - 1)]
    out = []

    def emit(cells):
        out.append("  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths)) + "  " + cells[-1])
    emit(header)
    out.append("-" * (sum(widths) + 2 * len(widths) + 5))
    prev = None
    for line in lines:
        if prev is not None and line[0] != prev:
            out.append("")
        emit(line)
        prev = line[0]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# the issue's targets
# ---------------------------------------------------------------------------------------------
def _t(name, value, limit, ok, detail="") -> dict:
    if value is None:
        return {"target": name, "status": "not measured", "value": None, "limit": limit,
                "detail": detail}
    return {"target": name, "status": "met" if ok else "missed", "value": value, "limit": limit,
            "detail": detail}


def evaluate_targets(results: Results, sd_name: str = "symdiff") -> list[dict]:
    out = []
    f = results.one

    def time_of(w, case, impl):
        r = f(w, case, impl)
        return r.time if r is not None and r.status == "ok" else None

    cases = {w: sorted({r.case for r in results.find(w)}, key=_case_key) for w in WORKLOADS}
    if cases["W1"]:
        c = cases["W1"][0]
        r = f("W1", c, sd_name)
        ratio = r.ratio if r and r.status == "ok" else None
        out.append(_t("W1 value+grad <= 1.05x hand-written NumPy", ratio, 1.05,
                      ratio is not None and ratio <= 1.05, _min_detail(r)))
        peers = [x for x in results.find("W1", c) if x.impl in common.PEERS and x.time]
        if r and r.time and peers:
            best = min(peers, key=lambda x: x.time)
            out.append(_t("W1 ahead of every peer (symdiff / fastest peer)", r.time / best.time,
                          1.0, r.time <= best.time, f"fastest peer: {best.impl}"))
        pk = r.extra.get("peak_over_handwritten") if r else None
        out.append(_t("W1 peak memory <= 1.3x hand-written (tracemalloc)", pk, 1.3,
                      pk is not None and pk <= 1.3))
    if cases["W2"]:
        r = f("W2", cases["W2"][0], sd_name)
        ratio = r.ratio if r and r.status == "ok" else None
        out.append(_t("W2 <= 1.05x hand-written NumPy", ratio, 1.05,
                      ratio is not None and ratio <= 1.05, _min_detail(r)))
    if cases["W3"]:
        rows = [f("W3", c, sd_name) for c in cases["W3"]]
        rows = [r for r in rows if r is not None]
        ratios = [r.extra.get("grad_over_forward") for r in rows]
        if rows and None not in ratios:
            worst = max(ratios)
            out.append(_t("W3 gradient graph <= 4x forward nodes, every depth", worst, 4.0,
                          worst <= 4.0, ", ".join(f"{r.case}: {x:.2f}x"
                                                  for r, x in zip(rows, ratios))))
        speed = [r.extra.get("jax_first_call_over_this") for r in rows]
        if rows and None not in speed:
            worst = min(speed)
            out.append(_t("W3 build+grad+compile >= 10x faster than JAX first jit call, every "
                          "depth", worst, 10.0, worst >= 10.0,
                          ", ".join(f"{r.case}: {x:.1f}x" for r, x in zip(rows, speed))))
        deepest = rows[-1] if rows else None
        ratio = deepest.ratio if deepest is not None and deepest.status == "ok" else None
        out.append(_t(f"W3 evaluation at {deepest.case if deepest else 'max depth'} <= 3x "
                      "hand-written plain Python", ratio, 3.0, ratio is not None and ratio <= 3.0,
                      _min_detail(deepest)))
    if cases["W4"]:
        rows = [f("W4", c, sd_name) for c in cases["W4"]]
        errs = [r for r in results.find("W4", impl=sd_name) if r.status != "ok"]
        out.append(_t("W4 no error (RecursionError or other) at any size",
                      len(errs), 0, not errs, "; ".join(f"{r.case}: {r.status}" for r in errs)))
        rows = [r for r in rows if r is not None]
        big = rows[-1] if rows else None
        ratio = big.ratio if big is not None and big.status == "ok" else None
        out.append(_t(f"W4 {big.case if big else ''} build+grad+compile no slower than CasADi",
                      ratio, 1.0, ratio is not None and ratio <= 1.0))
        for r in rows[1:]:
            g, pn = r.extra.get("growth_vs_prev"), r.extra.get("prev_nodes")
            if g is None or not pn:
                continue
            n = int(r.case.split()[0])
            limit = 1.1 * n / pn  # 11 for 10x the nodes
            out.append(_t(f"W4 time({n})/time({pn}) <= {limit:.1f} (1.1x linear)", g, limit,
                          g <= limit))
    if cases["W5"]:
        c = cases["W5"][0]
        r = f("W5", c, sd_name)
        own = r.extra.get("hvp_over_own_value_grad") if r else None
        vg = f("W5", c, f"{sd_name} value+grad (W1)")
        own_min = (r.extra["min_s"] / vg.extra["min_s"]
                   if r and vg and "min_s" in r.extra and "min_s" in vg.extra else None)
        out.append(_t("W5 HVP <= 1.5x symdiff's own value+grad", own, 1.5,
                      own is not None and own <= 1.5,
                      f"ratio of the minima {own_min:.2f}x" if own_min else ""))
        ratio = r.ratio if r and r.status == "ok" else None
        out.append(_t("W5 HVP <= 1.1x hand-written NumPy HVP", ratio, 1.1,
                      ratio is not None and ratio <= 1.1, _min_detail(r)))
    if cases["W6"]:
        r = f("W6", cases["W6"][0], sd_name)
        ratio = r.ratio if r and r.status == "ok" else None
        out.append(_t("W6 <= 1.1x hand-written NumPy", ratio, 1.1,
                      ratio is not None and ratio <= 1.1, _min_detail(r)))
    if cases["W7"]:
        r = f("W7", cases["W7"][0], sd_name)
        v = r.extra.get("over_sympy_lambdify") if r else None
        lam = f("W7", cases["W7"][0], "sympy lambdify(math)")
        vmin = (r.extra["min_s"] / lam.extra["min_s"]
                if r and lam and "min_s" in r.extra and "min_s" in lam.extra else None)
        out.append(_t("W7 per call no slower than SymPy lambdify(math)", v, 1.0,
                      v is not None and v <= 1.0,
                      f"ratio of the minima {vmin:.2f}x" if vmin else ""))
    if cases["W8"]:
        rows = [r for r in results.find("W8", impl=sd_name) if r.status == "ok" and r.time]
        slower = [r for r in rows if r.extra.get("over_jax") is not None
                  and r.extra["over_jax"] > 1.0]
        measured = [r for r in rows if r.extra.get("over_jax") is not None]
        out.append(_t("W8 Hessian evaluation no slower than JAX at every (problem, n)",
                      max((r.extra["over_jax"] for r in measured), default=None), 1.0,
                      not slower, "; ".join(f"{r.case}: {r.extra['over_jax']:.2f}x"
                                            for r in slower)))
        near = [r for r in rows if not r.case.startswith("mf") and _case_key(r.case)[0] >= 100]
        worst = max((r.ratio for r in near if r.ratio is not None), default=None)
        out.append(_t("W8 x^T A x and logistic regression within 2x of the closed form, "
                      "n >= 100", worst, 2.0, worst is not None and worst <= 2.0))
        counts = {}
        for r in results.find("W8", impl=sd_name):
            if r.extra.get("hessian_nodes") is not None:
                counts.setdefault(r.case.split()[0], set()).add(r.extra["hessian_nodes"])
        grows = [p for p, c in counts.items() if len(c) > 1]
        out.append(_t("W8 Hessian node count independent of n", len(grows), 0,
                      bool(counts) and not grows, ", ".join(f"{p}: {sorted(c)}"
                                                            for p, c in counts.items())))
        mf = [r for r in rows if r.case.startswith("mf") and "total_s" in r.extra]
        if mf:
            r = mf[-1]
            out.append(_t(f"W8 {r.case} total < 10 s", r.extra["total_s"], 10.0,
                          r.extra["total_s"] < 10.0))
            out.append(_t(f"W8 {r.case} peak memory <= 3x the Hessian's size",
                          r.extra["peak_over_hessian"], 3.0,
                          r.extra["peak_over_hessian"] <= 3.0))
    if cases["W9"]:
        c = cases["W9"][-1]
        r = f("W9", c, sd_name)
        for peer_name, limit, what in (("torch", 1.5, "within 1.5x of PyTorch eager"),
                                       ("autograd", 1.0, "faster than autograd")):
            p = f("W9", c, peer_name)
            ratio = r.time / p.time if r and r.time and p and p.time else None
            out.append(_t(f"W9 conv2d value+grad {what}", ratio, limit,
                          ratio is not None and ratio <= limit))
    bad = [c for c in results.checks if c.impl.startswith("symdiff") and not c.ok]
    bad_rows = [r for r in results.rows if r.impl.startswith("symdiff") and r.status != "ok"]
    out.append(_t("symdiff agrees with the references everywhere (no error, no wrong value)",
                  len(bad) + len(bad_rows), 0, not bad and not bad_rows,
                  "; ".join(f"{r.workload} {r.case} {r.impl}: {r.status}" for r in bad_rows)))
    return out


def _min_detail(row) -> str:
    m = row.extra.get("min_ratio") if row is not None else None
    return f"ratio of the minima {m:.2f}x" if m is not None else ""


def _case_key(case: str):
    digits = "".join(ch if ch.isdigit() else " " for ch in case).split()
    return (int(digits[0]) if digits else 0, case)


def format_targets(targets: list[dict]) -> str:
    lines = ["Targets (issue 4), default symdiff compile:"]
    for t in targets:
        v = t["value"]
        if t["status"] == "not measured":
            what = "not measured"
        elif isinstance(v, float):
            what = f"{t['status']}: {v:.3g} (limit {t['limit']:.3g})"
        else:
            what = f"{t['status']}: {v} (limit {t['limit']})"
        lines.append(f"  [{t['status']:^12}] {t['target']}: {what}"
                     + (f"  [{t['detail']}]" if t.get("detail") else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke run)")
    p.add_argument("--only", default=None, help="comma-separated workloads, e.g. W1,W3")
    p.add_argument("--json", default="bench_results.json", help="where to write the numbers")
    p.add_argument("--peers", default=",".join(common.PEERS),
                   help="comma-separated peers to run, or 'none'")
    p.add_argument("--repeats", type=int, default=None, help="timed batches per measurement")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="threads for NumPy's BLAS, PyTorch and XLA (default: theirs); 1 gives "
                        "steadier numbers on a machine shared with other work")
    return p.parse_args(argv)


def main(argv=None, out=None) -> Results:
    args = parse_args(argv)
    out = out or sys.stdout
    cfg = Config.make(args.quick)
    if args.repeats:
        cfg.repeats = args.repeats
    only = [w.strip().upper() for w in args.only.split(",")] if args.only else list(WORKLOADS)
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}")
    peers = [] if args.peers.strip().lower() == "none" else \
        [p.strip() for p in args.peers.split(",") if p.strip()]
    bad = [p for p in peers if p not in common.PEERS]
    if bad:
        raise SystemExit(f"unknown peer(s) {bad}; choose from {', '.join(common.PEERS)}")
    common.enable_peers(peers)
    threads = common.limit_threads(args.blas_threads)

    import symdiff
    from . import sdutil
    results = Results()
    results.info = {"config": vars(cfg), "machine": common.machine_info(),
                    "symdiff": {"version": getattr(symdiff, "__version__", "?"),
                                "optimize_option": sdutil.supports_optimize()},
                    "peers": common.peer_versions(), "pytensor_linker": common.pytensor_mode_name(),
                    "threads": threads, "workloads": only}
    print(f"symdiff {results.info['symdiff']['version']} benchmark"
          f"{' (--quick)' if cfg.quick else ''}: {', '.join(only)}; peers: "
          + ", ".join(f"{k} {v}" for k, v in results.info["peers"].items())
          + f"; threads: {threads}; PyTensor linker: {results.info['pytensor_linker']}",
          file=out, flush=True)
    t_start = time.perf_counter()
    for w in only:
        t0 = time.perf_counter()
        try:
            _runner(w)(cfg, results)
        except Exception as exc:  # noqa: BLE001 - one broken workload must not hide the others
            results.add(common.error_row(w, "-", "symdiff (harness)", exc))
        print(f"  {w} done in {time.perf_counter() - t0:.1f} s", file=out, flush=True)
    results.info["elapsed_s"] = time.perf_counter() - t_start
    targets = evaluate_targets(results)
    print("\n" + format_table(results), file=out)
    print("\nmedian / min: per call over the timed batches (min: the machine at its quietest); "
          "ratio: median over the 'vs' row's median; min ratio: min over its min (W3: "
          "evaluation vs hand-written plain Python; W4: build+grad+compile vs CasADi); max err: "
          "max |got - ref| / max(1, |ref|); setup: one-time build/trace/compile.", file=out)
    print("\n" + format_targets(targets), file=out)
    print(f"\ntotal {results.info['elapsed_s']:.1f} s", file=out, flush=True)
    payload = {"info": results.info, "rows": [r.as_dict() for r in results.rows],
               "checks": [c.as_dict() for c in results.checks], "targets": targets}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(_finite(payload), fh, indent=1, default=_json_default)
        print(f"wrote {args.json}", file=out)
    results.targets = targets
    return results


def _finite(o):
    """Non-finite floats as strings, so the file is strict JSON."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    return o


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def symdiff_ok(results: Results) -> bool:
    return all(c.ok for c in results.checks if c.impl.startswith("symdiff")) and \
        not any(r.impl.startswith("symdiff") and r.status != "ok" for r in results.rows)


if __name__ == "__main__":
    res = main()
    sys.exit(0 if symdiff_ok(res) else 1)
