"""The Benchmarks table: one function per row, in the README's order, each returning its four
cells (what, command, result, file); the result cell is made from the row's JSON."""

from __future__ import annotations

from collections.abc import Callable

from readme_figures.common import (
    Results,
    block,
    cpu_name,
    interval,
    is_shared,
    machine,
    num,
    pct,
    row_label,
    sci,
    short_count,
    sig,
    span,
    times,
)

ROWS: list[Callable[[Results], tuple[str, str, str, str]]] = []
NO_JSON = "the file has no JSON, so its figures are not repeated here"


def row(formatter):
    ROWS.append(formatter)
    return formatter


@block("benchmarks")
def benchmarks_table(results: Results) -> str:
    lines = ["| what | command | result | file |", "|---|---|---|---|"]
    for formatter in ROWS:
        cells = [cell.replace("|", "\\|") for cell in formatter(results)]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def demo_run(results: Results) -> str:
    """The demo's time, from the timings its script writes (absent before its next run)."""
    if not results.has("demo_sms/timings"):
        return "times in `demo_sms/README.md`"
    timing = results("demo_sms/timings")
    seconds = timing["seconds"]
    fresh = ", install included," if timing.get("fresh_install") else ""
    where = machine(timing["cpu"], timing["load_average"], timing["cores"])
    return (
        f"extraction {num(seconds['extract'], 1)} s, sweep {num(seconds['sweep'], 1)} s, the "
        f"whole demo {num(seconds['total'], 1)} s{fresh} on {where}"
    )


@row
def demo(results):
    sweep = results("demo_sms/sweep")
    best, layers = sweep["best"], {entry["layer"] for entry in sweep["entries"]}
    return (
        f"SMS demo: extract all {len(layers)} layers + sweep with CIs, memorisation capacity, MDL",
        "`bash scripts/demo.sh`",
        f"selected {row_label(best)}, C {best['C']:g}, test {best['test_accuracy']:.3f} "
        f"{interval(best['test_accuracy_ci'])}; {sweep['n_indistinguishable']} rows "
        f"indistinguishable from it; {demo_run(results)}",
        "`demo_sms/`",
    )


@row
def incremental(results):
    return (
        "incremental extraction (1,200 texts after 1,000)",
        "`python benchmarks/bench_incremental.py`",
        f"the superset computes only its new texts; the shared rows bitwise equal ({NO_JSON})",
        "`incremental.md`",
    )


@row
def lookup(results):
    small, large, huge = results("lookup_100k"), results("lookup_1M"), results("lookup_10M")
    loads = [
        run[key] for run in (small, large) for key in ("load_average_before", "load_average_after")
    ]
    upper = ": upper bounds" if is_shared(loads) else ""

    def timed(run):
        return f"{sig(run['seconds'])} s, {num(run['peak_mb'])} MB"

    traced = (
        "" if huge["vectorised"].get("timed_without_tracemalloc") else ", timed under tracemalloc"
    )
    return (
        "finding the missing rows of a big dataset",
        "`python benchmarks/bench_lookup.py --rows 1000000` (time without tracemalloc; memory "
        "from a separate traced run)",
        f"{short_count(small['rows'])} stored rows: {timed(small['vectorised'])} (dict lookup "
        f"before: {timed(small['reference'])}); {short_count(large['rows'])}: "
        f"{timed(large['vectorised'])} ({machine(small['cpu'], loads)}{upper}); "
        f"{short_count(huge['rows'])} (an earlier run{traced}): "
        f"{timed(huge['vectorised'])}",
        "`lookup.md`",
    )


@row
def store_views(results):
    return (
        "view as copy vs HDF5 virtual dataset",
        "`python benchmarks/bench_store_views.py 20000`",
        f"copy: a VDS over length-sorted shards reads a layer far slower ({NO_JSON})",
        "`store_views.md`",
    )


@row
def memory(results):
    run = results("memory")
    first, middle, last = run["runs"][0], run["runs"][1], run["runs"][-1]
    return (
        f"extraction peak RSS, {short_count(first['n'])} vs {short_count(middle['n'])} texts "
        "(tiny GPT-2)",
        "`python benchmarks/bench_memory.py --sizes 1000 50000 200000`",
        f"{num(first['peak_rss_mb'])} MB vs {num(middle['peak_rss_mb'])} MB: "
        f"{middle['peak_rss_mb'] / first['peak_rss_mb']:.2f}x, target {run['target']}; "
        f"{num(last['peak_rss_mb'])} MB at {short_count(last['n'])}: "
        f"{last['peak_rss_mb'] / first['peak_rss_mb']:.2f}x",
        "`memory.md`",
    )


@row
def streaming(results):
    run = results("streaming_2M")
    return (
        f"a head on a {short_count(run['rows'])} x {run['dim']} fp16 layer streamed from HDF5",
        "`python benchmarks/bench_streaming.py --rows 2000000`",
        f"peak RSS {num(run['peak_rss_mb'])} MB (target < {num(run['target_peak_rss_mb'])} MB)",
        "`streaming_2M.json`",
    )


@row
def solver(results):
    cases = results("solver_robust_degenerate")["cases"]
    fast = sum(case["solver"] == "probe-lbfgs" for case in cases)
    failed = sum(case["head_solver"] != "ok" for case in cases)
    fitted = f"all {len(cases)}" if fast == len(cases) else f"{fast} of {len(cases)}"
    return (
        "robust solver on degenerate matrices",
        "`python benchmarks/bench_solver.py --degenerate`",
        f"{fitted} cases fit by the fast path (previous solver: LinAlgError in {failed})",
        "`solver_robust.md`",
    )


@row
def research(results):
    run = results("research_sst2")
    sweep, n = run["sweep"], run["n"]
    best, entries = sweep["best"], sweep["entries"]
    top = max(entries, key=lambda entry: entry["test_accuracy"])
    also = ", also the best test row" if top["test_accuracy"] <= best["test_accuracy"] else ""
    low = len(run["mdl_rows_below_0_9"]) or "none"
    where = machine(run["machine"]["cpu"], _loads(run["machine"]), shared=run["machine"]["shared"])
    speed = _against(run["sweep_seconds"], run["sweep_target_seconds"], run["machine"]["shared"])
    return (
        f"research sweep, SST-2 {short_count(n['train'])} train / {n['val']} val / "
        f"{short_count(n['test'])} test",
        "`python benchmarks/bench_research.py --sst2 SST2_DIR`",
        f"each MDL block chooses its own C: MDL compression {run['mdl_compression_min']:.3f}-"
        f"{run['mdl_compression_max']:.3f} over the {run['heads']} rows, {low} below 0.9; MDL vs "
        f"accuracy rank correlation {run['spearman_test_accuracy_vs_mdl_compression']:.2f}; "
        f"selected {row_label(best)}, test {best['test_accuracy']:.3f} "
        f"{interval(best['test_accuracy_ci'])}{also}; {run['heads']} rows with memorisation + "
        f"MDL in {num(run['sweep_seconds'], 1)} s on {where} ({speed}); curve "
        f"{num(run['curve_seconds'], 1)} s (target < {run['curve_target_seconds']} s)",
        "`research_sst2.md`",
    )


def _loads(machine_info: dict) -> list:
    return [machine_info["load_average_before"], machine_info["load_average_after"]]


def _against(seconds: float, target: float, shared: bool) -> str:
    if shared and seconds > target:
        return f"target < {target} s not checkable under this load"
    return f"target < {target} s: {'met' if seconds < target else 'not met'}"


@row
def baselines(results):
    run = results("baselines_sms")
    chosen, words, majority = run["selected"], run["bag_of_words"], run["majority"]
    where = machine(run["machine"]["cpu"], _loads(run["machine"]), shared=run["machine"]["shared"])
    return (
        f"`probe sweep --baselines` cost and rows ({num(sum(run['n'].values()))} SMS texts, "
        f"layers {run['layers']})",
        "`python benchmarks/bench_baselines.py --n 1000 --layers 0:5`",
        f"random-weights model + extraction {num(run['random_weights_model_and_extract_seconds'])}"
        f" s vs {num(run['extract_seconds_real_model'])} s for the real model; baseline fits "
        f"{num(run['baselines_fit_seconds'], 1)} s ({where}; target: {run['target']}); selected "
        f"{row_label(chosen)} {chosen['test_accuracy']:.3f}, minus random weights "
        f"{chosen['selectivity_vs_random']:+.3f} {interval(chosen['selectivity_vs_random_ci'])}, "
        f"minus bag of words {chosen['selectivity_vs_bow']:+.3f} "
        f"{interval(chosen['selectivity_vs_bow_ci'])} (bag of words "
        f"{words['test_accuracy']:.3f}, majority {majority['test_accuracy']:.3f})",
        "`baselines_sms.md`",
    )


@row
def export(results):
    heads = results("export_smollm2")
    equal = min(head["labels_equal"] for head in heads)
    sizes = ", ".join(f"{num(head['export_mb'])} MB at layer {head['layer']}" for head in heads)
    return (
        "ONNX export parity",
        "`python benchmarks/bench_export.py --n-fit 300 --n-check 200`",
        f"{equal}/{heads[0]['n']} labels, max prob diff "
        f"{sci(max(head['max_prob_diff'] for head in heads))}; export {sizes}",
        "`export_smollm2.md`",
    )


@row
def extract_loop(results):
    run = results("extract_smollm2_sms")
    seconds = run["probe_seconds"]
    where = machine(run["device"], run["load_average_before_after"], run["threads"])
    return (
        "extraction vs the careful user's loop and the spam book's recipe "
        f"({num(run['texts'])} SMS texts, every layer)",
        "`python benchmarks/bench_extract.py --n 1000`",
        f"{where}: probe {num(seconds, 1)} s, {num(run['probe_tokens_per_s'])} tok/s, "
        f"{pct(run['probe_fraction_of_fp32_peak'])} of the fp32 GEMM peak (target 85%); "
        f"**{times(run['sorted_loop_seconds'] / seconds)}** the careful user's loop "
        f"({run['sorted_loop']}: {num(run['sorted_loop_seconds'], 1)} s); "
        f"{times(run['book_pad120_seconds'] / seconds)} the book's pad-to-120 recipe (its "
        f"padding ratio alone is {run['book_pad120_padded_tokens_per_real_token']:.2f}). Earlier "
        "Xeon runs: `extract_cpu_fusion.md`",
        "`extract_smollm2_sms.md`",
    )


@row
def fusion(results):
    fp32 = results("extract_smollm2_sms_compile")
    bf16, bf16_compiled = (
        results("extract_smollm2_sms_bf16"),
        results("extract_smollm2_sms_bf16_compile"),
    )
    return (
        "CPU fusion (`--compile`) and bf16 (`--dtype bfloat16`)",
        "`python benchmarks/bench_extract.py --n 1000 --compile --skip-naive` (and "
        "`--dtype bfloat16`)",
        f"{cpu_name(fp32['device'])} with AMX: fp32 compiled {num(fp32['probe_tokens_per_s'])} "
        f"tok/s, {pct(fp32['probe_fraction_of_fp32_peak'])} of the fp32 peak; bf16 "
        f"{num(bf16['probe_tokens_per_s'])} tok/s eager, "
        f"{num(bf16_compiled['probe_tokens_per_s'])} compiled",
        "`extract_cpu_fusion.md`",
    )


@row
def extract_options(results):
    run = results("extract_options_10k")
    walls = {name: entry["wall_seconds"] for name, entry in run["results"].items()}
    payback = "no payback" if walls["fp32 --compile"] >= walls["fp32 eager"] else "pays back"
    return (
        f"do the options pay back? {short_count(run['texts'])} SST-2 texts, CLI end to end",
        "`python benchmarks/bench_extract_options.py --data SST2_TRAIN --n 10000`",
        f"fp32 {num(walls['fp32 eager'], 1)} s, `--compile` {num(walls['fp32 --compile'], 1)} s "
        f"({payback}), bf16 {num(walls['bf16 eager'], 1)} s, bf16 `--compile` "
        f"{num(walls['bf16 --compile'], 1)} s",
        "`extract_options_10k.md`",
    )


@row
def sweep_67k(results):
    robust = results("sweep_sst2_robust")
    runs = [
        results(name) for name in ("sweep_sst2_67k", "sweep_sst2_67k_run1", "sweep_sst2_67k_run2")
    ]
    opening = [run["prepare_seconds"] for run in runs]
    fitting = [run["sweep_seconds"] for run in runs]
    totals = [run["total_seconds_with_opening_caches"] for run in runs]
    same_cs = len({tuple(entry["C"] for entry in run["entries"]) for run in runs}) == 1
    selections = {(run["best"]["layer"], run["best"]["pool"], run["best"]["C"]) for run in runs}
    reference = next(run["sklearn_reference"] for run in runs if run["sklearn_reference"])
    best = runs[0]["best"]
    same = "the same C on every row and " if same_cs else ""
    chosen = (
        f"{same}the same selection ({row_label(best)}, C {best['C']:g})"
        if len(selections) == 1
        else "different selections"
    )
    return (
        f"SST-2 67k sweep ({robust['heads']} heads, C on {robust['n_val']} validation, robust "
        "solver, CIs)",
        "`python benchmarks/bench_sweep.py --train SST2_TRAIN --val SST2_VAL --name "
        "sweep_sst2_robust`",
        f"{num(robust['prepare_seconds'] + robust['sweep_seconds'], 1)} s with the features "
        f"cached: opening the caches {num(robust['prepare_seconds'], 1)} s + the sweep "
        f"{num(robust['sweep_seconds'], 1)} s (target < {robust['target_seconds']} s; "
        f"{cpu_name(robust['machine']['cpu'])}); {len(robust['fallback_heads'])} fallbacks, "
        f"{len(robust['error_rows'])} error rows; scikit-learn lbfgs needs "
        f"{num(robust['sklearn_reference']['seconds_one_C'], 1)} s for the one selected head, "
        f"predictions agree {pct(robust['sklearn_reference']['val_prediction_agreement'], 0)}. "
        f"Reruns on {cpu_name(runs[0]['machine']['cpu'])} with C screening, opening without "
        f"torch and the faster binary pass (`--name sweep_sst2_67k`, `_run1`, `_run2`), "
        f"{len(runs)} runs: {span(totals)} s = opening {span(opening)} s + sweep {span(fitting)} s "
        f"(issue 18's target < 30 s), {chosen} in each; scikit-learn lbfgs "
        f"{num(reference['seconds_one_C'], 1)} s for the one selected head, predictions agree "
        f"{pct(reference['val_prediction_agreement'], 0)}",
        "`sweep_sst2_robust.md`, `sweep_sst2_67k.md`",
    )


@row
def extract_sst2(results):
    return (
        "SST-2 67k extraction (every text of GLUE's train file, all layers)",
        "`probe extract --model smollm2-135m --data SST2_TRAIN --layers all`",
        f"time and tokens per second in the file ({NO_JSON})",
        "`extract_sst2_train.md`",
    )


@row
def sweep_sms(results):
    return (
        "SMS sweep speed and a new-label head (issue 11)",
        "see file",
        f"the issue's targets were not met then ({NO_JSON}; the later speed-ups: `heads_speed.md`)",
        "`sweep_sms.md`",
    )


HEAD_RUNS = ("heads_speed_screen", "heads_speed_run2", "heads_speed")  # runs 1-3; 3 is final
CHECKED = {
    "sixclass": "six-class",
    "sst2k": "SST-2 2k by CV",
    "upos-cv": "UPOS by CV",
    "synthetic17": "synthetic 17-class",
}


@row
def heads_speed(results):
    runs = [results(name) for name in HEAD_RUNS]
    six = [run["sixclass"] for run in runs]
    upos = [run["upos"] for run in runs]
    final = runs[-1]
    loads = [
        run[key]["load_average"] for run in runs for key in ("machine_before", "machine_after")
    ]
    where = machine(final["machine_before"]["cpu"], loads, final["machine_before"]["cores"])
    one = [part["one_head"] for part in six]
    screening = results("screening_check")
    checks = {key: value for key, value in screening.items() if isinstance(value, dict)}
    checks.pop("machine")
    heads = sum(check["heads"] for check in checks.values())
    same = sum(check["same_C"] for check in checks.values())
    agreed = (
        f"the same C on all {heads} heads" if same == heads else f"the same C on {same} of {heads}"
    )
    parts = ", ".join(f"{CHECKED.get(key, key)} {check['heads']}" for key, check in checks.items())
    return (
        f"multi-class heads (issue 18): {final['sixclass']['sweep_cv']['heads']}-head sweeps on "
        f"the six-class data ({num(final['sixclass']['one_head']['n'])} texts), "
        f"{final['upos']['sweep']['heads']}-head UPOS sweep (17 classes, "
        f"{short_count(round(final['upos']['n_train'], -3))} words), one head vs scikit-learn",
        "`python benchmarks/bench_heads_speed.py --sixclass DIR --upos` (data: "
        "`benchmarks/make_sixclass.py`; word rows: `bench_tokens.py --part full`)",
        f"{where}, {len(runs)} runs with C screening (the last is the final code): six-class "
        f"sweep by 5-fold CV {span([p['sweep_cv']['seconds'] for p in six])} s (target < 60 s), "
        f"with a validation file {span([p['sweep_val']['seconds'] for p in six])} s (< 20 s), "
        f"`--control --mdl` {span([p['sweep_control_mdl']['seconds'] for p in six])} s "
        f"(< 3 min); one head with C by CV {span([h['probe']['seconds'] for h in one])} s vs "
        "`LogisticRegressionCV` (lbfgs, same Cs and folds) "
        f"{span([h['sklearn_LogisticRegressionCV']['seconds'] for h in one], 0)} s: "
        f"{span([h['ratio'] for h in one], 0)}x (target 10x); UPOS "
        f"{final['upos']['sweep']['heads']} heads {span([p['sweep']['seconds'] for p in upos])} s "
        f"(target < 60 s), with the word-type control "
        f"{span([p['sweep_control']['seconds'] for p in upos], 0)} s; checked on data the "
        f"screen's margins were not chosen on: {agreed} with and without it ({parts}; "
        "`screening_check.md`)",
        "`heads_speed.md`",
    )


@row
def multiclass(results):
    run = results("multiclass_4way")
    measures = run["selected_measures"]
    return (
        f"{len(run['classes'])}-class held-out sweep (SMS ham/spam + SST-2 neg/pos) with control "
        "+ MDL",
        "`python benchmarks/bench_multiclass.py --sst2 SST2_TRAIN`",
        f"{run['error_rows']} error rows; selected test {run['selected']['test_accuracy']:.4f} vs "
        f"independent scikit-learn {run['sklearn_probe']['test_accuracy']:.4f} "
        f'({run["gap_points"]:.2f} points); the "selectivity {measures["selectivity"]:+.3f}" '
        "once printed here was test accuracy minus chance (held-out control accuracy "
        f"{measures['control_accuracy']:.3f}, chance {1 / len(run['classes']):.2f}) and is "
        "withdrawn",
        "`multiclass_4way.md`",
    )


def _lpft_dataset(data: dict) -> str:
    """One dataset's LP-FT rows against the zero head's and the probe alone."""
    rows = {(entry["init"], entry["epochs"]): entry for entry in data["rows"]}
    epochs = sorted({epochs for init, epochs in rows if init == "probe"})
    said = []
    for number, epoch in enumerate(epochs):
        probe, zero = rows[("probe", epoch)], rows.get(("zero", epoch))
        unit = "epoch" if epoch == 1 else "epochs"
        accuracy = f"{probe['test']['accuracy']:.3f}"
        if number == 0:
            accuracy += f" {interval(probe['ci']['accuracy'])}"
        if zero is None:
            said.append(f"after {epoch} {unit} {accuracy} (the zero head not run)")
            continue
        versus = f"{zero['test']['accuracy']:.3f}"
        difference = probe["vs_zero"]
        paired = f"{difference['difference']:+.3f} {interval(difference['ci'])}"
        if number == 0:
            versus += f" {interval(zero['ci']['accuracy'])}"
            paired = f"paired difference {paired}"
        said.append(f"after {epoch} {unit} {accuracy} vs {versus} ({paired})")
    first = rows[("probe", epochs[0])]
    zero = rows.get(("zero", epochs[0]))
    if zero is not None:
        said.append(
            f"train loss after epoch 1: {first['history'][0]['train_loss']:.3f} vs "
            f"{zero['history'][0]['train_loss']:.3f}"
        )
    alone, gap = data["probe_alone"]["test"]["accuracy"], first["vs_probe"]
    if gap["difference"] == 0:
        said.append(f"LP-FT equals the probe alone ({alone:.3f})")
    else:
        said.append(
            f"LP-FT minus the probe alone ({alone:.3f}) {gap['difference']:+.3f} "
            f"{interval(gap['ci'])}"
        )
    return "; ".join(said)


@row
def lpft(results):
    run = results("lpft_smollm2-135m")
    sms, sst2 = run["datasets"]["sms"], run["datasets"]["sst2"]
    where = machine(
        run["machine"]["cpu"],
        [run["machine"]["load_before"], run["load_after"]],
        run["machine"]["cores"],
    )
    sizes = "/".join(str(sms["sizes"][split]) for split in ("train", "val", "test"))
    return (
        f"LP-FT (`--init-head probe`; the default `auto` starts there when a probe can be "
        f"fitted) vs a zero head, SMS {sizes} balanced, unfreeze {run['unfreeze']}",
        "`PROBE_CACHE=... python benchmarks/bench_lpft.py --datasets sms,sst2`",
        f"{where}. SMS, test accuracy {_lpft_dataset(sms)}. SST-2 "
        f"{short_count(sst2['sizes']['train'])}: {_lpft_dataset(sst2)}",
        "`lpft_smollm2-135m.md`",
    )


@row
def probe_vs_loop(results):
    run = results("probe_vs_loop_sms")
    user, probe = run["user"], run["probe"]
    loads = run["load_average_start_user_probe_end"]
    return (
        f"probe vs the workflow a careful user writes ({num(sum(run['n'].values()))} SMS "
        "texts): extract once with Hugging Face + scikit-learn `LogisticRegression` per layer, C "
        "on validation",
        "`python benchmarks/bench_probe_vs_loop.py --n 1500`",
        f"{machine(run['cpu'], loads, run['threads'])}: first head "
        f"{num(probe['first_head_seconds'], 1)} s vs {num(user['first_head_seconds'], 1)} s "
        f"({times(run['speedup_first_head'])}); the full sweep after extraction "
        f"{num(probe['sweep_seconds_with_opening'], 1)} s vs {num(user['sweep_fit_seconds'], 1)} "
        f"s ({times(run['speedup_sweep_after_extraction'])}); extraction + sweep "
        f"{num(probe['sweep_seconds'], 1)} s vs {num(user['sweep_seconds'], 1)} s "
        f"({times(run['speedup_sweep'])}); a further head {num(probe['further_head_seconds'], 2)}"
        f" s vs {num(user['further_head_seconds'], 2)} s ({times(run['speedup_further_head'])}). "
        "Older figures compared a cache with a loop that reruns the backbone every epoch "
        "(`--epoch-loop`) and are withdrawn",
        "`probe_vs_loop_sms.md`",
    )
