"""``probe fit``, ``probe sweep``, ``probe predict``: heads on cached features, and serving them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from probe.cli.common import fail_cleanly, say, verbosity_options


def _echo_err(quiet: bool):
    return (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))


def head_data_options(command):
    """Where the labelled texts come from; shared by fit and sweep."""
    options = [
        click.option("--model", default=None,
                     help="Model to extract with (default gpt2); checked against cache files."),
        click.option("--data", help="One file (CSV/TSV/JSONL/Parquet or cache .h5); a 'split' "
                     "column (train/val/test) splits it, else --test-size does."),
        click.option("--train", help="Training file or cache .h5."),
        click.option("--val", help="Validation file or cache .h5: chooses C (and the layer)."),
        click.option("--test", help="Test file or cache .h5: scored only, never chooses."),
        click.option("--labels", "labels_file", help="New label set (text or id + label, "
                     "optional split) for texts already cached: no model is loaded."),
        click.option("--text-col", default="text", show_default=True),
        click.option("--label-col", default="label", show_default=True),
        click.option("--test-size", default=0.2, show_default=True,
                     help="Test fraction held out (stratified, said on stderr) when no test "
                     "split is given; 0 trains on all."),
        click.option("--seed", default=0, show_default=True, help="Seed of that split."),
        click.option("--max-length", type=int, help="Tokens per text when extracting."),
        click.option("--C", "C", type=float, help="Inverse L2 strength (default: searched)."),
        click.option("--class-weight", type=click.Choice(["balanced"]),
                     help="Weight classes inversely to their frequency."),
        click.option("--device", default="auto", show_default=True,
                     help="Device for on-demand extraction."),
        click.option("--json", "as_json", is_flag=True, help="JSON on stdout."),
        click.option("--task", default=None, help="Word-level task: upos, xpos, deprel (edge "
                     "probing) or a label-list column of token-JSONL. CoNLL-U / token-JSONL "
                     "data implies word rows (default task upos)."),
        click.option("--word-pool", type=click.Choice(["first", "last", "mean"]), default=None,
                     help="Word rows: pool of a word's subwords (default last for causal "
                     "models, first for encoders)."),
        click.option("--val-size", default=0.1, show_default=True,
                     help="Word rows without --val: training sentences held out to choose C "
                     "and the layer (0: 5-fold CV)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _prepare(options: dict, layers: str):
    from probe.heads.rows import prepare
    from probe.research.words.rows import is_word_input, prepare_words

    if options["task"] or is_word_input(options["data"], options["train"]):
        if options["labels_file"]:
            from probe.errors import ProbeError

            raise ProbeError("--labels applies to sentence rows; word labels come with the data")
        if not options["task"]:
            _echo_err(options["quiet"])("task: upos (word-level data; --task to change)")
        return prepare_words(
            options["model"], task=options["task"] or "upos", train=options["train"],
            val=options["val"], test=options["test"], data=options["data"],
            word_pool=options["word_pool"], test_size=options["test_size"],
            val_size=options["val_size"], seed=options["seed"],
            max_length=options["max_length"], layers=layers, device=options["device"],
            log=_echo_err(options["quiet"]),
        )  # fmt: skip

    return prepare(
        options["model"], train=options["train"], val=options["val"], test=options["test"],
        data=options["data"], labels=options["labels_file"], text_col=options["text_col"],
        label_col=options["label_col"], test_size=options["test_size"], seed=options["seed"],
        max_length=options["max_length"], layers=layers, device=options["device"],
        log=_echo_err(options["quiet"]),
    )  # fmt: skip


def _short_name(text: str) -> str:
    name = Path(str(text).rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).stem if "." in name else name)


@click.command()
@head_data_options
@click.option("--layer", default="-1", show_default=True,
              help="Model layer: 0 = embeddings .. L = final output; -1 = last; "
              "12,18,24 = those layers side by side; mix = a learned mix of all.")  # fmt: skip
@click.option("--pool", default="last", show_default=True, help="last or mean.")
@click.option(
    "--out",
    type=click.Path(dir_okay=True),
    help="Head path (.json, or a directory). Default: heads/MODEL-DATA-lLAYER-POOL.json",
)
@verbosity_options
@fail_cleanly
def fit(layer, pool, out, **options):
    """Fit a linear head on cached features of one layer and pool; save it; report metrics.

    Data files are extracted on demand through the cache (a second call runs no model).
    C is chosen on --val, else by 5-fold cross-validation on train; --test only scores.
    With --labels, a new label set is joined to cached texts by id or exact text and the
    backbone is never loaded.

    \b
    Examples:
      probe fit --model smollm2-135m --data data/sms_spam.csv --layer 20 --pool last
      probe fit --model gpt2 --train train.csv --val val.csv --test test.csv --layer 8
      probe fit --train cache/features/KEY.h5 --labels topics.csv --layer 8 --json
    """
    from probe.features.layers import MIX, parse_row_spec
    from probe.features.pooling import check_pool
    from probe.heads.metrics import format_report
    from probe.heads.persistence import save_head
    from probe.research.sweep import fit_one, head_meta

    check_pool(pool)
    spec = parse_row_spec(layer)  # --layer 20, --layer 12,18,24, --layer mix
    data = _prepare(options, layers="all" if spec.kind == MIX else ",".join(spec.layers))
    spec = spec.resolved(data.layer, data.layers)
    chosen = spec if spec.multi else spec.layers[0]
    pool = getattr(data, "word_pool", pool)  # word rows hold one pool: the word pool
    result = fit_one(data, chosen, pool, C=options["C"], class_weight=options["class_weight"])
    meta = {**head_meta(data, result), **_word_meta(data)}
    task = options["labels_file"] or options["data"] or options["train"]
    name = spec.file_stem
    out = out or f"heads/{_short_name(data.model)}-{_short_name(task)}-l{name}-{pool}.json"
    head_path = save_head(out, result.classifier, meta, result.combiner)
    summary = {"head": str(head_path),
               **{k: meta[k] for k in ("model", "layer", "pool")}, **result.layers_info,
               "C": result.classifier.C_, "C_search": meta["C_search"],
               "train_seconds": result.seconds, "n": meta["n"],
               "train_accuracy": meta["train_accuracy"], "metrics": meta["metrics"]}  # fmt: skip
    if options["as_json"]:
        click.echo(json.dumps(summary, indent=2))
        return
    search = result.classifier.search_
    click.echo(
        f"model {data.model}  layer {result.layer}  pool {pool}  "
        + "  ".join(f"{name} {n}" for name, n in meta["n"].items())
    )
    click.echo(
        f"C {result.classifier.C_:g} ({search['method']})  fit {result.seconds:.2f} s  "
        f"train accuracy {meta['train_accuracy']:.4f}"
    )
    for split in ("val", "test"):
        if split in meta["metrics"]:
            click.echo("")
            click.echo(format_report(meta["metrics"][split], title=f"{split}:"))
    if "mix_weights" in result.layers_info:
        weights = result.layers_info["mix_weights"]
        click.echo("mix weights: " + "  ".join(
            f"{layer}:{w:.3f}" for layer, w in zip(result.layers_info["layers"], weights,
                                                   strict=True)))  # fmt: skip
    click.echo("")
    click.echo(f"head: {head_path}")


def _word_meta(data) -> dict:
    """What a word head records beyond a sentence head's (``probe predict`` tags words)."""
    if not hasattr(data, "word_pool"):
        return {}
    return {"unit": "word", "task": data.task, "word_pool": data.word_pool}


def research_options(command):
    """Uncertainty, selection and the research measures of ``probe sweep``; collected into
    one ``research`` dict of ``run_sweep`` keywords."""
    options = [
        click.option("--resamples", type=click.IntRange(min=10), default=1000, show_default=True,
                     help="Bootstrap resamples of every CI and paired comparison."),
        click.option("--repeats", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Refit each row on R bootstrap resamples of train: mean and sd."),
        click.option("--prefer-early", is_flag=True, help="Select the shallowest row that "
                     "the paired bootstrap cannot tell from the lowest-loss row."),
        click.option("--baselines", is_flag=True, help="Add majority, bag-of-words and "
                     "random-weights rows (same model, re-initialised, extracted once), and "
                     "each row's accuracy minus theirs with paired-bootstrap CIs."),
        click.option("--control", is_flag=True, help="Memorisation capacity per row: train "
                     "accuracy on labels hashed from the text (random labels)."),
        click.option("--mdl", is_flag=True, help="Online codelength per row (Voita & "
                     "Titov 2020) and compression over the uniform code."),
        click.option("--mix", is_flag=True, help="Add a learned scalar mix of all the "
                     "swept layers (per pool) as a row."),
        click.option("--concat", "concat", multiple=True, help="Add a row on these layers' "
                     "features side by side, e.g. 12,18,24 (repeatable)."),
    ]  # fmt: skip

    def collect(**kwargs):
        multi = (["mix"] if kwargs.pop("mix") else []) + [spec for spec in kwargs.pop("concat")]
        research = {key: kwargs.pop(key) for key in ("resamples", "repeats", "prefer_early",
                                                     "control", "mdl", "baselines")}  # fmt: skip
        return command(research={**research, "multi": multi}, **kwargs)

    import functools

    wrapped = functools.update_wrapper(collect, command)
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


@click.command()
@head_data_options
@click.option("--layers", default="all", show_default=True,
              help="Layers to fit (and to extract): all, 0,6,11, 4:9, -1.")  # fmt: skip
@click.option("--pools", default="last,mean", show_default=True)
@click.option(
    "--jobs", type=click.IntRange(min=1), help="Parallel fits (default: one per CPU core)."
)
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="PNG path (default OUT_DIR/sweep.png)."
)
@click.option("--out-dir", type=click.Path(file_okay=False),
              help="Where sweep.md, sweep.json, sweep.png and the best head go "
              "(default sweeps/MODEL-DATA).")  # fmt: skip
@research_options
@verbosity_options
@fail_cleanly
def sweep(layers, pools, jobs, plot, out_dir, research, **options):
    """Fit a head on every stored layer x pool; pick the best on validation; table + plot.

    The row with the lowest --val log loss (else out-of-fold log loss on train) is chosen;
    rows a paired bootstrap cannot tell from it are marked (=), and --prefer-early takes the
    shallowest of them. Test accuracy and macro-F1 carry 95% bootstrap CIs and choose
    nothing. --baselines adds majority, bag-of-words and random-weights rows and each row's
    selectivity against them; --control, --mdl and --repeats add memorisation capacity,
    online codelength and refits on resampled training sets. Writes a Markdown table, JSON,
    a PNG plot of accuracy against layer and the selected head to --out-dir; prints the
    table (or JSON).

    \b
    Examples:
      probe sweep --model smollm2-135m --data data/sms_spam.csv
      probe sweep --model smollm2-135m --train sst2_train.csv --val sst2_val.csv --json
      probe sweep --data cache/features/KEY.h5 --labels topics.csv --pools mean
      probe sweep --train tr.csv --val va.csv --test te.csv --baselines --mdl --mix
    """
    from probe.features.layers import resolve_layers
    from probe.research.saving import save_sweep
    from probe.research.sweep import markdown_table, run_sweep

    # --concat layers are extracted with the swept ones; a mix mixes the swept layers.
    concat = [spec.replace("+", ",") for spec in research["multi"] if spec != "mix"]
    data = _prepare(options, layers=layers if layers == "all" else ",".join([layers, *concat]))
    chosen = resolve_layers(layers, data.n_layers_model)
    chosen = [layer for layer in chosen if layer in data.layers] if layers == "all" else chosen
    pool_names = [p.strip() for p in pools.split(",") if p.strip()]
    if research.pop("baselines"):
        from probe.research.baselines import prepare_baselines

        research["baselines"] = prepare_baselines(
            data, text_col=options["text_col"], label_col=options["label_col"],
            device=options["device"], quiet=options["quiet"], log=_echo_err(options["quiet"]),
        )  # fmt: skip
    if hasattr(data, "word_pool"):  # word rows hold one pool: the word pool
        pool_names = [data.word_pool]
    result = run_sweep(data, chosen, pool_names, n_jobs=jobs, C=options["C"],
                       class_weight=options["class_weight"], quiet=options["quiet"],
                       seed=options["seed"], **research)  # fmt: skip
    source = options["data"] or options["train"] or "store"
    folder = Path(out_dir or f"sweeps/{_short_name(data.model)}-{_short_name(source)}")
    if hasattr(data, "word_pool"):
        from probe.research.words.report import word_fields

        result.update(word_fields(data))
    table = markdown_table(result)
    if hasattr(data, "word_pool"):
        from probe.research.words.report import word_markdown

        table += "\n" + word_markdown(result)
    settings = {key: options[key] for key in ("text_col", "label_col", "test_size", "seed",
                                              "max_length", "task", "val_size")}  # fmt: skip
    report = save_sweep(result, data, folder, plot, settings, table=table,
                        head_extra=_word_meta(data))  # fmt: skip
    _echo_err(options["quiet"])("wrote " + ", ".join(report["files"]))
    click.echo(json.dumps(report, indent=2) if options["as_json"] else table)


@click.command()
@click.option("--head", "head", help="A head .json (from probe fit/sweep/finetune).")
@click.option(
    "--onnx",
    "onnx_dir",
    type=click.Path(file_okay=False),
    help="A probe export folder instead of --head: runs in onnxruntime, no torch.",
)
@click.argument("texts", nargs=-1)
@click.option("--data", help="File of texts to classify instead of TEXT arguments.")
@click.option("--text-col", default="text", show_default=True)
@click.option("--model", default=None, help="Where the head's model lives now (must match it).")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSONL).")
@verbosity_options
@fail_cleanly
def predict(head, onnx_dir, texts, data, text_col, model, device, as_json):
    """Classify texts with a saved head: label and class probabilities.

    Runs the backbone only up to the head's layer; a text gets the prediction it got from
    the cache at fit time. A head is refused for a model it was not fitted on.

    \b
    Examples:
      probe predict --head heads/smollm2-135m-l20-last.json "WIN a FREE prize now!!!"
      probe predict --head sweeps/run/head.json --data new_messages.csv --json
      probe predict --onnx exports/sms "WIN a FREE prize now!!!"
    """
    from probe.errors import ProbeError
    from probe.serve.predict import format_predictions, load_predictor

    if bool(texts) == bool(data):
        raise ProbeError("give texts as arguments or --data FILE (one of the two)")
    if bool(head) == bool(onnx_dir):
        raise ProbeError("give --head HEAD.json or --onnx EXPORT_DIR (one of the two)")
    if data:
        from probe.data.readers import read_dataset

        dataset = read_dataset(data, text_col, label_col=None)
        if dataset.skipped_empty:
            say(f"skipped {dataset.skipped_empty} empty texts")
        texts = dataset.texts
    if onnx_dir:
        from probe.serve.export import OnnxPredictor

        predictor = OnnxPredictor.load(onnx_dir)
    else:
        predictor = load_predictor(head, model, device)
        from probe.serve.wordpredict import format_tagged, is_word_head, predict_words

        if is_word_head(predictor.meta):  # a word head tags each word
            rows = predict_words(predictor, list(texts))
            for line in ([json.dumps(r, ensure_ascii=False) for r in rows] if as_json
                         else [format_tagged(rows)]):  # fmt: skip
                click.echo(line)
            return
    rows = predictor.predict(list(texts))
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    else:
        click.echo(format_predictions(rows))


COMMANDS = [fit, sweep, predict]
