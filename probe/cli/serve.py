"""``probe predict`` and ``probe export``: a saved head at work on new texts, here or in
onnxruntime without torch."""

from __future__ import annotations

import json

import click

from probe.cli.common import fail_cleanly, say, verbosity_options


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
      probe predict --head results/heads/smollm2-135m-l20-last.json "WIN a FREE prize now!!!"
      probe predict --head results/sweeps/run/head.json --data new_messages.csv --json
      probe predict --onnx results/exports/sms "WIN a FREE prize now!!!"
    """
    from probe.serve.commands import predict_request

    predictions = predict_request(
        texts,
        head=head,
        onnx_dir=onnx_dir,
        data=data,
        text_col=text_col,
        model=model,
        device=device,
    )
    for line in predictions.lines(as_json):
        click.echo(line)


@click.command()
@click.argument("head", type=click.Path(dir_okay=True))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for model.onnx, tokenizer.json and probe-export.json.",
)
@click.option("--model", default=None, help="Where the head's model lives now (must match it).")
@click.option(
    "--no-check", is_flag=True, help="Skip the onnxruntime-vs-torch parity check on a few texts."
)
@click.option("--json", "as_json", is_flag=True, help="Print the export's metadata as JSON.")
@verbosity_options
@fail_cleanly
def export(head, out, model, no_check, as_json):
    """Export HEAD (a head .json) as one ONNX graph + tokenizer, runnable with onnxruntime.

    The graph holds the backbone up to the head's layer, the pooling, the fp16 rounding of
    the cache, the standardisation and the linear head; inputs input_ids and
    attention_mask (right-padded, any batch and length), outputs logits and
    probabilities. Needs the extra: pip install 'probe[export]'. The last line printed is
    the folder.

    \b
    Examples:
      probe export results/heads/smollm2-135m-sms-l20-last.json --out results/exports/sms
      probe predict --onnx results/exports/sms "WIN a FREE prize now!!!"
    """
    from probe.serve.export import META_FILE, export_head, export_size

    folder = export_head(head, out, model=model, check=not no_check)
    record = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if as_json:
        click.echo(json.dumps({**record, "folder": str(folder), "bytes": export_size(folder)}))
        return
    say(
        f"exported layer {record['layer']} ({record['pool']}) of {record['model']}, "
        f"labels {', '.join(record['labels'])}: {export_size(folder) / 1e6:.1f} MB"
    )
    click.echo(str(folder))


COMMANDS = [predict, export]
