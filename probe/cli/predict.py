"""``probe predict``: a saved head (or its ONNX export) on new texts."""

from __future__ import annotations

import click

from probe.cli.common import fail_cleanly, verbosity_options


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


COMMANDS = [predict]
