"""``probe fit``, ``probe sweep`` and ``probe curve`` as library calls: options in, results out.

Each command parses its options, calls one function here and prints what it returns. What
lies between lives here once: labelled rows from the data options (sentence or word rows),
default folder and file names, the baselines' extra extraction, the saved head and the files
a sweep or a curve leaves. Keyword arguments are the commands' options, with their defaults,
so a notebook gets the same files and the same summary from the same call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from probe.errors import ProbeError
from probe.messages import say

# The data options every head command takes (``probe fit --help``), with their defaults.
ROW_OPTIONS = {
    "model": None,
    "data": None,
    "train": None,
    "val": None,
    "test": None,
    "labels_file": None,
    "text_col": "text",
    "label_col": "label",
    "test_size": 0.2,
    "seed": 0,
    "max_length": None,
    "device": "auto",
    "task": None,
    "word_pool": None,
    "val_size": 0.1,
    "group_col": None,
    "features": None,
    "multi_label": False,
    "label_sep": "|",
    "site": None,  # --site: where in a block an on-demand extraction reads (None: block)
    "positions": (),  # --position: pools stored beside last and mean
}
SHARED_OPTIONS = ("train", "val", "test", "data", "test_size", "seed", "max_length", "device")
SWEEP_SETTINGS = (
    "text_col",
    "label_col",
    "group_col",
    "test_size",
    "seed",
    "max_length",
    "task",
    "val_size",
    "multi_label",
    "label_sep",
    "site",
    "positions",
)


def row_options(options: dict) -> dict:
    """``options`` with every data option present (defaults filled); unknown ones refused."""
    unknown = set(options) - set(ROW_OPTIONS)
    if unknown:
        raise ProbeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return {**ROW_OPTIONS, **options}


def prepare_rows(layers: str = "all", **options):
    """Labelled cached rows for the data options: word rows for word-level data or a
    ``task``, else sentence rows (``probe.heads.rows.prepare``); extracts on demand."""
    from probe.data.targets import target_spec
    from probe.heads.rows import prepare
    from probe.research.words.rows import is_word_input, prepare_words, reads_sentences

    o = row_options(options)
    if o["features"]:
        o = _features_as_data(o)
    regression = o["task"] == "regression"
    target = target_spec(o["label_col"], regression, o["multi_label"], o["label_sep"])
    if target.kind != "classification" and is_word_input(o["data"], o["train"]):
        raise ProbeError(f"--task {target.kind} reads sentence rows; word-level data has none")
    if not reads_sentences(o):
        if o["labels_file"]:
            raise ProbeError("--labels applies to sentence rows; word labels come with the data")
        if o["group_col"]:
            raise ProbeError(
                "--group-col applies to sentence rows; word rows are grouped by sentence"
            )
        if o["site"] or o["positions"]:
            raise ProbeError("--site and --position read sentence rows; word rows have neither")
        if not o["task"]:
            say("task: upos (word-level data; --task to change)")
        words = {key: o[key] for key in (*SHARED_OPTIONS, "word_pool", "val_size")}
        return prepare_words(o["model"], task=o["task"] or "upos", layers=layers, **words)
    columns = ("text_col", "label_col", "group_col", "site", "positions")
    sentences = {key: o[key] for key in (*SHARED_OPTIONS, *columns)}
    return prepare(o["model"], labels=o["labels_file"], layers=layers, target=target, **sentences)


def _features_as_data(o: dict) -> dict:
    """``--features FILE``: the file's view in the store becomes the data (its labels from
    ``--labels`` or the file); everything after reads it as an extraction."""
    from probe.features.store.imported import features_view

    given = [k for k in ("data", "train", "val", "test", "model", "task", "group_col") if o[k]]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ProbeError(f"--features FILE brings its own rows and model record; drop {flag}")
    view = features_view(o["features"], o["labels_file"], o["label_col"], o["text_col"])
    return {**o, "data": str(view), "labels_file": None}


def held_pools(data, pools: list[str], source: str) -> list[str]:
    """The ``pools`` a features file holds (a bare array: ``last``); the rest are said and
    skipped, none left is a one-line error."""
    from probe.heads.cached import open_cached

    held = open_cached(data.train.parts[0][0]).pools
    kept = [pool for pool in pools if pool in held]
    if not kept:
        raise ProbeError(f"{source} holds the pool(s) {', '.join(held)}; give --pools with them")
    if len(kept) < len(pools):
        say(f"{source} holds no {', '.join(p for p in pools if p not in held)} pool: skipped")
    return kept


def short_name(text) -> str:
    """A file-name-safe short name of a model or data source (its stem)."""
    name = Path(str(text).rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).stem if "." in name else name)


def word_meta(data) -> dict:
    """What a word head records beyond a sentence head's (``probe predict`` tags words)."""
    if not hasattr(data, "word_pool"):
        return {}
    return {"unit": "word", "task": data.task, "word_pool": data.word_pool}


def _rows_for_spec(layer: str, options: dict):
    """(data, resolved row spec, what to fit: a layer or a multi-layer spec) for ``--layer``."""
    from probe.features.layers import MIX, parse_row_spec

    spec = parse_row_spec(layer)  # --layer 20, --layer 12,18,24, --layer mix
    data = prepare_rows(layers="all" if spec.kind == MIX else ",".join(spec.layers), **options)
    spec = spec.resolved(data.layer, data.layers)
    return data, spec, spec if spec.multi else spec.layers[0]


# --- probe fit --------------------------------------------------------------------------------


def fit_and_save(
    layer: str = "-1",
    pool: str = "last",
    out=None,
    *,
    C: float | None = None,
    class_weight: str | None = None,
    exact: bool = False,
    overwrite: bool = False,
    probe: str | None = None,
    **options,
) -> dict:
    """Fit a head on one layer (or a multi-layer spec) and pool, save it; return the summary
    (``probe fit --json``). ``out`` None: results/heads/MODEL-DATA-lLAYER-POOL.json (under
    ``$PROBE_OUT`` when set); a head there is replaced only with ``overwrite``. ``probe``:
    the head's family (``--probe``: mass-mean, mlp...; ``probe.heads.families``); None: the
    default logistic head."""
    from probe.features.pooling import POOL_NAMES, check_pool
    from probe.heads.persistence import head_paths, save_head
    from probe.outputs import claim_head, default_output
    from probe.research.sweep import fit_one, head_meta, say_fallback
    from probe.research.words.rows import reads_sentences

    check_pool(pool)
    if probe is not None:  # refused before any extraction or fit
        from probe.heads.families import probe_name

        probe = probe_name(probe)
    if out is not None:  # refused before any extraction or fit
        claim_head(head_paths(out)[0], overwrite)
    positions = options.get("positions", ())
    if pool not in (*POOL_NAMES, *positions) and reads_sentences(options):
        options["positions"] = (*options.get("positions", ()), pool)  # --pool first reads it
    data, spec, chosen = _rows_for_spec(layer, options)
    pool = getattr(data, "word_pool", pool)  # word rows hold one pool: the word pool
    head = {"C": C, "class_weight": class_weight, "exact": exact, "probe": probe}
    result = fit_one(data, chosen, pool, **head)
    say_fallback(result)
    meta = {**head_meta(data, result), **word_meta(data)}
    task = next((options[k] for k in ("labels_file", "features", "data") if options.get(k)), None)
    task = task or options.get("train")
    site = data.text_format.get("site", "block")
    reading = re.sub(r"[^A-Za-z0-9_.-]+", "-", pool).strip("-")  # marker: is in -> marker-is-in
    name = f"{short_name(data.model)}-{short_name(task)}-l{spec.file_stem}-{reading}"
    name += "" if site == "block" else f"-{site}"
    if out is None:
        out = claim_head(default_output("heads", f"{name}.json"), overwrite)
    head_path = save_head(out, result.classifier, meta, result.combiner)
    return {
        "head": str(head_path),
        **{k: meta[k] for k in ("model", "layer", "pool")},
        "site": site,
        **result.layers_info,
        **result.probe_fields(),
        "C": result.task.penalty_of(result.classifier) if result.task else result.classifier.C_,
        "penalty": result.task.PENALTY if result.task else "C",
        "target": data.target,
        "C_search": meta["C_search"],
        "solver": result.classifier.solver_,
        "fallback_reason": getattr(result.classifier, "fallback_reason_", None),
        "train_seconds": result.seconds,
        "n": meta["n"],
        "train_accuracy": meta["train_accuracy"],
        "metrics": meta["metrics"],
    }


def format_fit(summary: dict) -> str:
    """``probe fit``'s text report of ``fit_and_save``'s summary."""
    from probe.heads.metrics import format_report

    if summary.get("target", "classification") != "classification":
        from probe.research.targets.report import format_target_fit

        return format_target_fit(summary)
    lines = [
        f"model {summary['model']}  layer {summary['layer']}  pool {summary['pool']}  "
        + (f"site {summary['site']}  " if summary.get("site", "block") != "block" else "")
        + "  ".join(f"{name} {n}" for name, n in summary["n"].items()),
        (f"probe {summary['probe']}  " if summary.get("probe") else "")
        + ("" if summary["C"] is None else f"C {summary['C']:g} ")
        + f"({summary['C_search']['method']})  "
        f"fit {summary['train_seconds']:.2f} s  train accuracy {summary['train_accuracy']:.4f}",
    ]
    for split in ("val", "test"):
        if split in summary["metrics"]:
            lines += ["", format_report(summary["metrics"][split], title=f"{split}:")]
    if "mix_weights" in summary:
        pairs = zip(summary["layers"], summary["mix_weights"], strict=True)
        lines.append("mix weights: " + "  ".join(f"{layer}:{w:.3f}" for layer, w in pairs))
    if summary.get("neurons"):
        lines.append("neurons (ranked on train): " + ", ".join(map(str, summary["neurons"])))
    return "\n".join([*lines, "", f"head: {summary['head']}"])


# --- probe sweep ------------------------------------------------------------------------------


def sweep_and_save(
    layers: str = "all",
    pools: str = "last,mean",
    *,
    jobs: int | None = None,
    plot=None,
    out_dir=None,
    C: float | None = None,
    class_weight: str | None = None,
    exact: bool = False,
    research: dict | None = None,
    overwrite: bool = False,
    probe: str | None = None,
    **options,
) -> tuple[dict, str]:
    """Sweep every layer x pool, save the table, JSON, plot and the selected head (multi-layer
    too) to ``out_dir`` (default results/sweeps/MODEL-DATA, under ``$PROBE_OUT`` when set; a
    head there is replaced only with ``overwrite``); return (sweep.json's report, the table).

    ``research`` holds ``run_sweep``'s research keywords (resamples, repeats, prefer_early,
    metric, control, mdl, ``multi``: "mix" and concat specs) and ``baselines`` (bool).
    ``probe``: the probes to compare (``--probe logistic,mass-mean``; ``sparse:1,2,4``), each
    fitted on every row; None: the default logistic head.
    """
    from probe.features.layers import MIX, parse_row_spec, resolve_layers
    from probe.outputs import claim_head, default_output
    from probe.research.selection import check_metric
    from probe.research.sweep import run_sweep
    from probe.research.sweep_report import markdown_table

    research = dict(research or {})
    check_metric(research.get("metric"), 2)  # its name, before any extraction; classes later
    o = row_options(options)
    if probe is not None:  # refused before any extraction or fit
        from probe.heads.families import parse_probes

        research["probes"] = parse_probes(probe)
    if out_dir is not None:  # refused before any extraction or fit
        claim_head(Path(out_dir) / "head.json", overwrite)
    # --concat layers are extracted with the swept ones; a mix mixes the swept layers.
    specs = [parse_row_spec(spec) for spec in research.get("multi", ())]
    concat = [",".join(spec.layers) for spec in specs if spec.kind != MIX]
    data = prepare_rows(layers=layers if layers == "all" else ",".join([layers, *concat]), **o)
    chosen = resolve_layers(layers, data.n_layers_model)
    chosen = [layer for layer in chosen if layer in data.layers] if layers == "all" else chosen
    pool_names = [p.strip() for p in pools.split(",") if p.strip()]
    pool_names += [p for p in o["positions"] if p not in pool_names]  # --position: swept too
    if research.pop("baselines", False):
        from probe.research.baselines.inputs import prepare_baselines

        research["baselines"] = prepare_baselines(
            data,
            text_col=o["text_col"],
            label_col=o["label_col"],
            device=o["device"],
        )
    if hasattr(data, "word_pool"):  # word rows hold one pool: the word pool
        pool_names = [data.word_pool]
    if o["features"]:
        pool_names = held_pools(data, pool_names, Path(o["features"]).name)
    source = o["data"] or o["train"] or o["features"] or "store"
    if out_dir is None:
        out_dir = default_output("sweeps", f"{short_name(data.model)}-{short_name(source)}")
        claim_head(out_dir / "head.json", overwrite)
    result = run_sweep(
        data,
        chosen,
        pool_names,
        n_jobs=jobs,
        C=C,
        class_weight=class_weight,
        exact=exact,
        seed=o["seed"],
        **research,
    )
    folder = Path(out_dir)
    table = markdown_table(result)
    if hasattr(data, "word_pool"):
        from probe.research.words.report import word_fields, word_markdown

        result.update(word_fields(data))
        table += "\n" + word_markdown(result)
    settings = {key: o[key] for key in SWEEP_SETTINGS}
    report = save_sweep(
        result, data, folder, plot, settings, table=table, head_extra=word_meta(data)
    )
    return report, table


# --- probe curve ------------------------------------------------------------------------------


def selected_row(folder, options: dict) -> tuple[str, str]:
    """(layer, pool) of a sweep's selected row; when ``options`` name no data, the sweep's
    data, settings and model fill them in (in place)."""
    path = Path(folder) / "sweep.json" if Path(folder).is_dir() else Path(folder)
    try:
        sweep = json.loads(path.read_text(encoding="utf-8"))
        best = sweep["best"]
    except (OSError, ValueError, KeyError) as error:
        raise ProbeError(f"--from-sweep {folder}: no readable sweep.json ({error})") from None
    if not any(options.get(key) for key in ("data", "train", "labels_file")):
        recorded = {**sweep.get("data", {}), **(sweep.get("settings") or {})}
        options.update({key: value for key, value in recorded.items() if key in ROW_OPTIONS})
        options["model"] = options.get("model") or sweep.get("model")
    return str(best["layer"]), best["pool"]


def curve_and_save(
    layer: str | None = None,
    pool: str | None = None,
    *,
    from_sweep=None,
    sizes: str = "1,2,4,8,16,32,64,128",
    seeds: int = 5,
    jobs: int = 1,
    out_dir=None,
    C: float | None = None,
    class_weight: str | None = None,
    exact: bool = False,
    **options,
) -> tuple[dict, list[Path]]:
    """A learning curve of one row (or of a sweep's selected row, with its data), saved to
    ``out_dir`` (default results/curves/MODEL-DATA-lLAYER-POOL, under ``$PROBE_OUT`` when
    set); return (the curve, its files).
    ``class_weight`` and ``exact`` are accepted with the other head options and not used."""
    from probe.outputs import default_output
    from probe.research.curve import learning_curve

    options = row_options(options)
    if from_sweep:
        sweep_layer, sweep_pool = selected_row(from_sweep, options)
        layer, pool = layer or sweep_layer, pool or sweep_pool
    layer, pool = layer or "-1", pool or "last"
    try:
        size_list = [int(part) for part in str(sizes).split(",") if part.strip()]
    except ValueError:
        message = f"--sizes must be whole numbers separated by commas, not {sizes!r}"
        raise ProbeError(message) from None
    data, spec, chosen = _rows_for_spec(layer, options)
    result = learning_curve(
        data, chosen, pool, sizes=size_list, seeds=seeds, seed=options["seed"], C=C, n_jobs=jobs
    )
    source = options["data"] or options["train"] or "store"
    name = f"{short_name(data.model)}-{short_name(source)}-l{spec.file_stem}-{pool}"
    return result, save_curve(result, Path(out_dir or default_output("curves", name)))


# --- the files a sweep and a curve leave -------------------------------------------------------


def save_sweep(
    result: dict,
    data,
    folder: str | Path,
    plot: str | Path | None = None,
    settings: dict | None = None,
    table: str | None = None,
    head_extra: dict | None = None,
) -> dict:
    """Write sweep.md (``table``, else the sweep's own), sweep.json, the plot and the selected
    head (multi-layer heads too; ``head_extra`` adds to its record); return the report that
    sweep.json holds."""
    from probe.heads.persistence import save_head
    from probe.outputs import write_json, write_text
    from probe.research.sweep import head_meta, public
    from probe.research.sweep_report import markdown_table, plot_sweep

    folder = Path(folder)
    best = result["_best_result"]
    meta = {**head_meta(data, best), **(head_extra or {})}
    head_path = save_head(folder / "head.json", best.classifier, meta, best.combiner)
    report = {**public(result), "settings": settings or {}, "head": str(head_path)}
    write_text(folder / "sweep.md", table or markdown_table(result))
    write_json(folder / "sweep.json", report)
    plot_path = plot_sweep(result, plot or folder / "sweep.png")
    report["files"] = [
        str(folder / "sweep.md"),
        str(folder / "sweep.json"),
        str(plot_path),
        str(head_path),
    ]
    return report


def save_curve(result: dict, folder: str | Path) -> list[Path]:
    """Write curve.md, curve.json and curve.png; return their paths."""
    from probe.outputs import write_json, write_text
    from probe.research.curve import markdown_table, plot_curve

    folder = Path(folder)
    return [
        write_text(folder / "curve.md", markdown_table(result)),
        write_json(folder / "curve.json", result),
        plot_curve(result, folder / "curve.png"),
    ]
