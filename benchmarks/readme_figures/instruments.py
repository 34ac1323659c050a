"""The figures of docs/tutorials/instruments.md: the city-statement sweeps over probes, sites
and layers (``cities_sites.json``) and the intervention at the block sweep's selected head
(``cities_intervene/intervene.json``), both written by ``benchmarks/bench_cities.sh``."""

from __future__ import annotations

from readme_figures.common import Results, block, interval, num, results_file, sig

SITES_FILE = "cities_sites"
INTERVENE_FILE = "cities_intervene/intervene"


def cpu_of(report: dict) -> str:
    """'AMD EPYC, 2 cores' from the machine lines ``bench_cities.sh`` wrote."""
    lines = report["machine"]
    name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    cores = next(line for line in lines if line.isdigit())
    return f"{name}, {cores} cores"


def _accuracy(row: dict) -> str:
    return f"{row['test_accuracy']:.3f} {interval(row['test_accuracy_ci'])}"


@block("instruments-cities")
def cities(results: Results) -> str:
    report = results(SITES_FILE)
    rows = [row for row in report["rows"] if row.get("test_accuracy") is not None]
    cells = {(r["site"], r["layer"], r["probe"]): r for r in rows}
    pairs = [
        (cells[(site, layer, "logistic")], cells[(site, layer, "mass-mean")])
        for site, layer, probe in cells
        if probe == "logistic" and (site, layer, "mass-mean") in cells
    ]
    below = sum(mass["test_accuracy"] < logistic["test_accuracy"] for logistic, mass in pairs)
    apart = sum(
        mass["test_accuracy_ci"][1] < logistic["test_accuracy_ci"][0] for logistic, mass in pairs
    )
    best = {
        probe: max((r for r in rows if r["probe"] == probe), key=lambda r: r["test_accuracy"])
        for probe in ("logistic", "mass-mean")
    }
    chosen = report["selected"]
    sites = "; ".join(
        f"{site}: layer {row['layer']} {row['pool']} {row['probe']}, {_accuracy(row)}"
        for site, row in chosen.items()
    )
    found = sorted({row["layer"] for row in rows})
    n = report.get("n_statements")
    data = f"{num(n)} city statements" if n else "the city statements"
    return (
        f"**Measured** ({cpu_of(report)}): {data}, SmolLM2-135M, layers {found[0]}-{found[-1]} "
        f"at four sites, logistic and mass-mean probes, C and pool by grouped 5-fold CV, test "
        f"accuracy with 95% cluster-bootstrap intervals on held-out cities. Each site's "
        f"selected row: {sites}. "
        f"The lowest CV loss of all is at the {report['best_site']} site. Mass-mean scored below "
        f"logistic in {below} of {len(pairs)} (site, layer) cells, with disjoint intervals in "
        f"{apart}; its best cell ({best['mass-mean']['site']} layer {best['mass-mean']['layer']}, "
        f"{_accuracy(best['mass-mean'])}) against logistic's best ({best['logistic']['site']} "
        f"layer {best['logistic']['layer']}, {_accuracy(best['logistic'])})."
        f"{_baselines(report.get('baselines'))} ({results_file('cities_sites.md')})."
    )


def _baselines(found: dict | None) -> str:
    """What the words alone reach: the share of the accuracy a probe must beat."""
    if not found:
        return ""
    split = found["split"]
    words, random = found["bag_of_words"], found.get("random_weights_best")
    text = (
        f" A bag-of-words head on the same split reaches {words[f'{split}_accuracy']:.3f} "
        f"{interval(words[f'{split}_accuracy_ci'])}"
    )
    if random:
        text += (
            f" and the best random-weights row {random[f'{split}_accuracy']:.3f} "
            f"{interval(random[f'{split}_accuracy_ci'])}"
        )
    return text


@block("instruments-intervene")
def intervene(results: Results) -> str:
    run = results(INTERVENE_FILE)
    layers = run["readouts"]
    smallest = min((a for a in run["alphas"] if a > 0), default=None)
    at = [row for row in run["dose"] if row["alpha"] == smallest]
    moved = sum(row["moved"] for row in at)
    effects = [row["effect"] for row in at]
    erasure = run.get("erasure") or {}
    same = erasure.get("same_layer_probe")
    erased = ""
    if same:
        drops = [r["effect"] for r in erasure["readouts"]]
        erased = (
            f". Erasing it with {erasure['method']} took a same-layer logistic probe refitted on "
            f"the erased rows from {same['clean']:.3f} to {same['erased']:.3f} (random erasures: "
            f"{same['random_erased']:.3f}; chance {same['chance']:.3f}) and the later readouts' "
            f"accuracy by {sig(-max(drops), 2)} to {sig(-min(drops), 2)} beyond random"
        )
    return (
        f"**Measured** (same machine): the block sweep's head (layer {run['layer']} "
        f"{run['pool']}, target class {run['target']!r}) added along its direction to "
        f"{num(run['rows']['intervened'])} held-out statements at alphas "
        f"{', '.join(f'{a:g}' for a in run['alphas'])} (units of the typical norm, "
        f"{sig(run['typical_norm'])}), beside {len(run['random_seeds'])} random directions of "
        f"the same norm. At alpha {smallest:g} the readouts of {layers[0]}-"
        f"{layers[-1].split()[-1]} (fitted on clean rows) moved toward the target beyond random "
        f"on {moved} of {len(at)}, by "
        f"{sig(min(effects), 2)} to {sig(max(effects), 2)} in probability{erased} "
        f"({results_file('cities_intervene/intervene.md')})."
    )


@block("instruments-verbalizers")
def verbalizers(results: Results) -> str:
    run = results("cities_intervene_prompted/intervene")
    clean = run["clean"]["verbalizers"]
    words = " over ".join(repr(word) for word in run["verbalizers"].values())
    rows = {row["alpha"]: row for row in run["dose"] if row["readout"] == "verbalizers"}
    positive = sorted(alpha for alpha in rows if alpha > 0)
    against = [a for a in positive if rows[a]["effect_ci"][1] < 0]
    toward = [a for a in positive if rows[a]["effect_ci"][0] > 0]
    at = rows[positive[0]]
    return (
        f"**Measured** (same machine): the statements prompted (`{{text}} This statement is`), a "
        f"head at layer {run['layer']} {run['pool']} on that view, the same intervention read as "
        f"the next-token log-probability margin of {words}. On the clean statements that margin "
        f"toward the correct word averages {clean['true']:+.3f} nats (0: chance), toward "
        f"{run['verbalizers'][run['target']]!r} on all of them {clean['toward_target']:+.2f}: "
        f"the model's own answer does not track the truth its hidden states hold. Pushing along "
        f"the direction toward {run['target']!r} moved the margin *against* that word beyond "
        f"random at {len(against)} of {len(positive)} positive alphas (at {positive[0]:g}: "
        f"{at['effect']:+.3f} {interval(at['effect_ci'], sign='+')}) and toward it at "
        f"{len(toward)}. A null result for use: the direction steers later probes, not "
        f"this model's answer ({results_file('cities_intervene_prompted/intervene.md')})."
    )
