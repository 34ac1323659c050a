"""The figures in the README's sentences: the demo, the token-level measurements, PromptEOL,
export parity and the extraction options."""

from __future__ import annotations

from readme_figures.common import (
    Results,
    block,
    fill,
    interval,
    is_shared,
    machine,
    num,
    results_file,
    row_label,
    sci,
    short_count,
    span,
    times,
)
from readme_figures.table import HEAD_RUNS, demo_run

ORDINALS = {1: "every", 2: "every second", 3: "every third", 4: "every fourth", 5: "every fifth"}


@block("demo")
def demo(results: Results) -> str:
    sweep = results("demo_sms/sweep")
    best, entries = sweep["best"], sweep["entries"]
    layers, pools = {entry["layer"] for entry in entries}, {entry["pool"] for entry in entries}
    if results.has("demo_sms/timings"):
        when = f"{demo_run(results)}, `benchmarks/results/demo_sms/timings.json`; "
    else:
        when = "times: `benchmarks/results/demo_sms/README.md`; "
    return (
        f"The demo extracts all {len(layers)} layers of the {num(sum(sweep['n'].values()))} SMS "
        f"texts once ({when}a cache hit afterwards), sweeps {len(entries)} heads ({len(layers)} "
        f"layers x {len(pools)} pools) with bootstrap CIs, memorisation capacity and MDL "
        f"(selected: {row_label(best)}, C {best['C']:g}, test accuracy "
        f"{best['test_accuracy']:.3f} {interval(best['test_accuracy_ci'])}), draws a learning "
        "curve for the selected row and writes one HTML report; then a short token-level sweep "
        "(UPOS with the word-type control task on every fifth layer of 400 shipped UD-EWT "
        "sentences) and tags a sentence with its head:"
    )


@block("demo-grouping")
def demo_grouping(results: Results) -> str:
    change = results("demo_sms/grouping_change")
    rowwise, grouped = change["rowwise_split"], change["grouped_split"]
    before, after = change["before"], change["after"]

    def chosen(row: dict) -> str:
        return (
            f"{row_label(row)}, C {row['C']:g}, test accuracy {row['test_accuracy']:.4f} "
            f"{interval(row['test_accuracy_ci'])}"
        )

    return (
        f"**What grouped splits changed in the demo.** The SMS data repeat "
        f"{num(change['rows_sharing_text'])} of their {num(change['rows'])} texts. Split row "
        f"by row (seed 0, 20%), {num(rowwise['seen_in_train'])} of the {num(rowwise['test'])} "
        f"test rows had their exact text in train ({rowwise['seen_spam']} of them spam); "
        f"grouped, {num(grouped['seen_in_train'])} of {num(grouped['test'])}. Selected before "
        f"(row-wise splits, C by accuracy first): {chosen(before)}; now (grouped, C by "
        f"held-out log loss): {chosen(after)} "
        "(`benchmarks/results/demo_sms/grouping_change.json`, `benchmarks/demo_grouping.py`)."
    )


def moved(causes: list[str]) -> str:
    """Which of the search's shortcuts moved a choice, from the benchmark's attribution."""
    if not causes:
        return ""
    screen = any("screen" in cause or "stop" in cause for cause in causes)
    return f"What moved it: {', '.join(causes)}" + (
        ". " if screen else "; the screen and early stop moved none. "
    )


@block("quickstart")
def quickstart(results: Results) -> str:
    run = results("quickstart")
    where = machine(run["cpu"], run["load_average"], run["cores"])
    verdict = "both right" if run["right"] else "NOT both right"
    return (
        f"Measured: the sweep {run['seconds']['sweep']:.0f} s and the prediction "
        f"{run['seconds']['predict']:.0f} s in an empty store, {verdict} ({where}; "
        "`benchmarks/results/quickstart.json`, `benchmarks/bench_quickstart.py`)."
    )


@block("exact")
def exact(results: Results) -> str:
    check = results("exact_check")
    names = {"sst2": "SST-2 2k with its validation file", "sst2-cv": "SST-2 2k by 5-fold CV"}
    names.update({"country": "country", "xpos": "XPOS"})
    parts = {key: check[key]["summary"] for key in names}
    heads = sum(part["heads"] for part in parts.values())
    differs = sum(part["C_differs"] for part in parts.values())
    causes = sorted({cause for part in parts.values() for cause in part["by_cause"]})
    cpu = {mode: sum(part["cpu"][mode] for part in parts.values()) for mode in ("default", "exact")}
    same = all(part["selection_same"] for part in parts.values())
    regret = max(part["max_regret"] for part in parts.values())
    test = max(part["max_test_accuracy_change"] for part in parts.values())
    old = parts["sst2"]["old_rule"]
    split = check["sst2_67k"]["split"]
    apart = sorted({abs(row["val_right"][0] - row["val_right"][1]) for row in split})
    loads = [x for key in names for x in check[key].get("load_average") or []]
    where = machine(check["machine"]["cpu"], loads or [0.0], check["machine"]["cores"])
    return (
        f"**The default search's C differs from `--exact` on {differs} of {heads} heads** on "
        f"data no rule was tuned on ({', '.join(names.values())}), moving held-out log loss by "
        f"at most {regret:.4f} and test accuracy by at most {test:.4f}"
        + (", with the same selected row in each sweep" if same else "")
        + f", for {cpu['exact'] / cpu['default']:.1f}x less CPU ({cpu['default']:.1f} s vs "
        f"{cpu['exact']:.1f} s; {where}). "
        + moved(causes)
        + f"Under the old accuracy-first rule the fast and exact searches split "
        f"{old['default_differs']} of {parts['sst2']['heads']} SST-2 2k heads on the "
        f"{parts['sst2']['n_held_out']}-sentence validation file, each over about one example, "
        f"and the {len(split)} SST-2 67k heads on which two recorded sweeps chose different Cs "
        f"are {' or '.join(map(str, apart))} validation examples apart: accuracy ties broken "
        "by a tolerance change (`benchmarks/results/exact_check.md`, `benchmarks/bench_exact.py`)."
    )


@block("tokens")
def tokens(results: Results) -> str:
    run = results("tokens_smollm2_ewt")
    compare, full = run["compare"]["compare"], run["full"]["full"]
    sentence, word = compare["sentence"], compare["word"]
    loads = [
        run["compare"]["machine"]["load_before"],
        run["compare"]["machine"]["load_after"],
        run["full"]["machine"]["load_after"],
    ]
    cores = run["compare"]["machine"]["cores"]
    where = machine(run["compare"]["machine"]["cpu"], loads, cores)
    upper = "; times under load are upper bounds" if is_shared(loads, cores) else ""
    per_word = full["bytes_per_word_per_layer"]
    intro = fill(
        f"Measured (`benchmarks/bench_tokens.py`, {results_file('tokens_smollm2_ewt.md|json')}), "
        f"SmolLM2-135M, all 31 layers, word pool last, {where}{upper}:"
    )
    rows = [
        (
            f"extraction, first {compare['sentences']} EWT dev sentences "
            f"({num(sentence['tokens'])} tokens): word rows / sentence rows",
            f"{num(word['extract_seconds'])} s / {num(sentence['extract_seconds'])} s = "
            f"**{compare['word_over_sentence']:.2f}** (target <= 1.10)",
        ),
        (
            f"extraction, all {num(full['sentences'])} sentences ({num(full['words'])} words, "
            f"{num(full['computed_rows'])} distinct sentences), word rows",
            f"{num(full['extract_seconds'])} s under load; {full['unaligned']} words unaligned",
        ),
        (
            "disk",
            f"**{num(per_word)} bytes per word per layer = "
            f"{full['mb_per_1000_words_per_layer']:.2f} MB per 1,000 words per layer** "
            f"(fp16 x {round(per_word / 2)})",
        ),
        (
            f"peak RSS, word extraction of {compare['sentences']} sentences (sentence rows: "
            f"{num(sentence['peak_rss_mb'])} MB)",
            f"{num(word['peak_rss_mb'])} MB; shards flush every 8,192 word vectors",
        ),
    ]
    table = ["| | figure |", "|---|---|", *(f"| {what} | {figure} |" for what, figure in rows)]
    return "\n".join([intro, "", *table])


@block("upos")
def upos(results: Results) -> str:
    run = results("tokens_upos_smollm2_ewt")
    sweep, reference = run["sweep"], run["sklearn_reference"]
    best, entries = sweep["best"], sweep["entries"]
    first, last = entries[0], entries[-1]
    step = entries[1]["layer"] - first["layer"]
    speed = [results(name)["upos"] for name in HEAD_RUNS]
    final = results(HEAD_RUNS[-1])
    loads = [final[key]["load_average"] for key in ("machine_before", "machine_after")]
    where = machine(final["machine_before"]["cpu"], loads, final["machine_before"]["cores"])
    per_head = [part["sweep"]["heads_cpu_seconds"] / part["sweep"]["heads"] for part in speed]
    chosen = final["upos"]["sweep"]["selected"]
    return (
        f"UPOS on all of EWT dev (our split by sentence: {sweep['sentences']['test']} test "
        f"sentences, {sweep['sentences']['val']} validation; {ORDINALS.get(step, 'some')} layer, "
        f"{results_file('tokens_upos_smollm2_ewt.md')}): test accuracy rises from "
        f"{first['test_accuracy']:.3f} at layer {first['layer']} to {best['test_accuracy']:.3f} "
        f"{interval(best['test_accuracy_ci'])} at the selected layer {best['layer']} (validation "
        f"log loss) and falls to {last['test_accuracy']:.3f} at layer {last['layer']}; the "
        "word-type control is reported on every row and selectivity at the selected layer is "
        f"{best['selectivity']:+.2f} {interval(best['selectivity_ci'], 2, '+')}. scikit-learn's "
        f"`LogisticRegression` at the selected layer and C on the same split: "
        f"{reference['sklearn_test_accuracy']:.3f} ({reference['difference_points']:+.2f} points "
        f"apart). Speed ({len(speed)} runs, {where}; `heads_speed.md`, which also has the "
        f"solvers before): the {final['upos']['sweep']['heads']}-layer UPOS sweep on all of EWT "
        f"dev ({len(best['test']['labels'])} classes, {num(final['upos']['n_train'])} training "
        f"words) takes {span([part['sweep']['seconds'] for part in speed])} s "
        f"({span([part['sweep_control']['seconds'] for part in speed], 0)} s with the control "
        f"task): {span(per_head)} s of CPU per head, under the 60 s the issue asks. With all "
        f"{final['upos']['sweep']['heads']} layers the validation choice is layer "
        f"{chosen['layer']} (test {chosen['test_accuracy']:.3f}; scikit-learn's "
        "`LogisticRegression` at that layer and C: "
        f"{final['upos']['sklearn_test_accuracy_at_selected']:.3f})."
    )


@block("prompt")
def prompt(results: Results) -> str:
    run = results("prompt_sst2")
    data, plain, eol = run["data"], run["conditions"]["none"], run["conditions"]["PromptEOL"]
    before, after = plain["selected"], eol["selected"]
    low, high = before["test_accuracy_ci"], after["test_accuracy_ci"]
    gain = 100 * (after["test_accuracy"] - before["test_accuracy"])
    moves = "rises" if gain > 0 else "falls" if gain < 0 else "stays"
    if low[1] >= high[0] and high[1] >= low[0]:
        verdict = (
            f"the intervals overlap, so the gain ({gain:+.1f} points) is suggestive, not shown"
        )
    else:
        verdict = f"the intervals do not overlap: a gain of {gain:+.1f} points"
    return (
        '`benchmarks/bench_prompt.py` measures a PromptEOL template (`This sentence: "{text}" '
        'means in one word:"`) against none on SST-2 with SmolLM2-135M '
        f"({short_count(data['train'])} train, validation-selected, {short_count(data['test'])} "
        f"held-out test; {results_file('prompt_sst2.md')}): the selected test accuracy {moves} "
        f"from {before['test_accuracy']:.3f} {interval(low)} (no prompt; layer {before['layer']}, "
        f"{before['pool']}) to {after['test_accuracy']:.3f} {interval(high)} (PromptEOL; layer "
        f"{after['layer']}, {after['pool']}); {verdict}."
    )


@block("export")
def export(results: Results) -> str:
    heads = results("export_smollm2")
    equal = min(head["labels_equal"] for head in heads)
    return (
        f"Parity on SmolLM2-135M: labels equal on {equal}/{heads[0]['n']} texts, probabilities "
        f"within {sci(max(head['max_prob_diff'] for head in heads))} "
        f"({results_file('export_smollm2.md')})."
    )


@block("bf16")
def bf16(results: Results) -> str:
    run = results("extract_options_10k")
    speedup = run["results"]["bf16 eager"]["speedup_vs_fp32_eager_wall"]
    return (
        f"`bfloat16` extracts {times(speedup)} as fast as fp32 ({num(run['texts'])} SST-2 texts, "
        f"end to end: {results_file('extract_options_10k.md')}; its features against fp32's: "
        f"{results_file('extract_cpu_fusion.md')})"
    )


@block("compile-seconds")
def compile_seconds(results: Results) -> str:
    compiled = [results(f"extract_smollm2_sms{name}") for name in ("_compile", "_bf16_compile")]
    return f"{span([run['warm_up_seconds_64_texts'] for run in compiled], 0)} s to compile"


@block("compile-speed")
def compile_speed(results: Results) -> str:
    eager, compiled = (
        results("extract_smollm2_sms_bf16"),
        results("extract_smollm2_sms_bf16_compile"),
    )
    walls = {
        name: entry["wall_seconds"]
        for name, entry in results("extract_options_10k")["results"].items()
    }
    fp32 = walls["fp32 eager"] / walls["fp32 --compile"]
    half = walls["bf16 eager"] / walls["bf16 --compile"]
    paid = "did not pay back" if max(fp32, half) < 1 else "paid back"
    texts = short_count(results("extract_options_10k")["texts"])
    return (
        f"On this CPU, once compiled, bf16 ran "
        f"{times(compiled['probe_tokens_per_s'] / eager['probe_tokens_per_s'])} as fast on "
        f"{num(eager['texts'])} SMS texts, but on {texts} short SST-2 texts it {paid} its "
        f"compile time ({times(fp32)} fp32, {times(half)} bf16 wall)"
    )
