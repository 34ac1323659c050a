"""The figures of the task-type pages (docs/tutorials/regression.md, multi-label.md,
many-classes.md): the ridge, multi-label and many-class benchmarks, each with its CPU and
load, read from their results JSON."""

from __future__ import annotations

from readme_figures.common import Results, block, machine, num, pct, results_file, sci, sig, times


@block("tasks-regression")
def regression(results: Results) -> str:
    run = results("ridge_places")
    chosen, theirs = run["selected"]["ours"], run["selected"]["baseline"]
    loads = [run["load_average_before"], run["load_average_after"]]
    where = machine(run["machine"]["cpu"], loads, run["machine"]["cores"])
    return (
        f"**Measured** ({where}): latitude and longitude of {num(run['n_train'] + run['n_test'])} "
        f"place names, SmolLM2-135M, {len(run['rows'])} rows (layers x pools), penalty by "
        f"5-fold CV over {len(run['alphas'])} alphas: probe's ridge took {sig(run['ours_seconds'])}"
        f" s against {sig(run['baseline_seconds'])} s for scikit-learn's `RidgeCV` with the same "
        f"alphas and folds ({times(run['speedup'])} faster; target 5x). The same alpha on "
        f"{run['same_alpha_rows']} of {len(run['rows'])} rows; test R² apart by at most "
        f"{sci(run['max_test_r2_difference'])} (target 0.01). Selected: layer {chosen['layer']} "
        f"{chosen['pool']}, alpha {chosen['alpha']:g}, test R² {chosen['test_r2']:.3f} (RidgeCV's "
        f"choice: layer {theirs['layer']} {theirs['pool']}, test R² {theirs['test_r2']:.3f}) "
        f"({results_file('ridge_places.md')}, `benchmarks/bench_ridge.py`)."
    )


@block("tasks-multilabel")
def multilabel(results: Results) -> str:
    run, sweep = results("multilabel_ewt"), results("multilabel_sweep_ewt")
    sklearn = run["summary"]["sklearn"]
    where = machine(sweep["cpu"], [sweep["load_before"], sweep["load_after"]], sweep["cores"])
    heads = machine(run["cpu"], [run["load_before"], run["load_after"]], run["cores"])
    chosen = sweep["selected"]
    return (
        f"**Measured** ({where}): `probe sweep --multi-label` over the {sweep['rows']} rows "
        f"(layers x pools) of the {num(run['n'])} EWT sentences' {len(run['labels'])} "
        f"properties, SmolLM2-135M features cached, every CI and the selection's bootstrap "
        f"included, took {sig(sweep['wall_seconds'])} s (target 60 s); selected layer "
        f"{chosen['layer']} {chosen['pool']}, C {chosen['C']:g}, test macro-F1 "
        f"{chosen['test_macro_f1']:.3f} [{chosen['test_macro_f1_ci'][0]:.3f}, "
        f"{chosen['test_macro_f1_ci'][1]:.3f}] ({results_file('multilabel_sweep_ewt.md')}). "
        f"The heads alone ({heads}) against scikit-learn's `LogisticRegressionCV` per label on "
        f"{sklearn['rows']} rows: {times(sklearn['speedup_wall'])} faster, the same C on "
        f"{sklearn['same_C_rows']} of {sklearn['rows']}, test macro-F1 apart by at most "
        f"{sig(sklearn['max_abs_macro_f1_gap'], 1)} ({results_file('multilabel_ewt.md')}, "
        "`benchmarks/bench_multilabel.py`)."
    )


@block("tasks-many-classes")
def many_classes(results: Results) -> str:
    run = results("many_classes_country")
    head = next(h for h in run["heads"] if "sklearn" in h)
    ours, theirs, shape = head["probe"], head["sklearn"], run["data"]
    where = machine(run["machine_before"]["cpu"], [head["load_before"], head["load_after"]], 2)
    swept = run["sweep"]
    sweep_where = machine(run["machine_before"]["cpu"], [swept["load_before"], swept["load_after"]])
    rows = swept["heads"]
    return (
        f"**Measured** ({where}): the country of {num(shape['n'])} place names, "
        f"{shape['classes']} classes, SmolLM2-135M layer {head['layer']} {head['pool']}, C "
        f"chosen on a validation split ({num(shape['train'])} / {num(shape['val'])} / "
        f"{num(shape['test'])} rows): one probe head took {sig(ours['seconds'])} s against "
        f"{num(theirs['seconds'])} s for scikit-learn's `LogisticRegression` (lbfgs, "
        f"multinomial, `max_iter` {theirs['max_iter']}, warm-started over the same "
        f"{len(theirs['per_C'])} Cs after `StandardScaler`): {times(head['ratio_wall'])} faster "
        f"({times(head['ratio_wall_same_Cs'])} counting only the Cs probe solved; target 10x); "
        f"the same C ({ours['C']:g}), test accuracy {ours['test_accuracy']:.4f} against "
        f"{theirs['test_accuracy']:.4f}, the same test prediction on "
        f"{pct(head['test_prediction_agreement'], 2)} of rows (target 99%). The {rows}-row sweep "
        f"(layers x pools, C on the validation split, two workers; {sweep_where}) took "
        f"{sig(swept['seconds'])} s, {sig(swept['heads_cpu_seconds'])} CPU-seconds in its heads: "
        f"above the 300 s target ({results_file('many_classes_country.md')}, "
        "`benchmarks/bench_many_classes.py`)."
    )
