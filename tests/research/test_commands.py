"""The commands' library entry points: the same summary and files from Python as from the CLI,
and nothing printed by the library (the CLI prints)."""

from __future__ import annotations

import json

import pytest

from conftest import run_probe
from probe.errors import ProbeError


def test_fit_from_python_gives_the_clis_summary_and_prints_nothing(
    tiny_gpt2_dir, sms_labelled, tmp_path, capsys
):
    from probe.heads.persistence import load_head
    from probe.research.commands import fit_and_save, format_fit

    options = {"model": str(tiny_gpt2_dir), "data": str(sms_labelled), "max_length": 48}
    summary = fit_and_save("2", "mean", tmp_path / "py.json", **options)
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err == ""  # no configured channel: silent library
    done = run_probe(
        "fit", **options, layer=2, pool="mean", out=tmp_path / "cli.json", json=True, q=True
    )
    assert done.exit_code == 0, done.output
    from_cli = json.loads(done.output)
    timing = ("head", "train_seconds", "C_search")
    assert {k: v for k, v in from_cli.items() if k not in timing} == json.loads(
        json.dumps({k: v for k, v in summary.items() if k not in timing})
    )
    assert from_cli["C"] == pytest.approx(summary["C"], rel=1e-12)
    assert load_head(summary["head"])[1]["layer"] == 2
    text = format_fit(summary)
    assert text.startswith(f"model {summary['model']}  layer 2  pool mean")
    assert text.endswith(f"head: {tmp_path / 'py.json'}")


def test_the_default_head_name_says_model_data_layer_and_pool(
    tiny_gpt2_dir, sms_labelled, tmp_path, monkeypatch
):
    from probe.research.commands import fit_and_save

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_OUT")  # the default: ./results
    summary = fit_and_save(
        "1,3", "last", model=str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48
    )
    assert summary["head"].startswith("results/heads/") and summary["head"].endswith(
        "-sms90-l1-3-last.json"
    )
    assert (tmp_path / summary["head"]).is_file() and summary["layers"] == [1, 3]


def test_a_misspelt_option_is_refused_not_ignored():
    from probe.research.commands import curve_and_save, fit_and_save

    with pytest.raises(ProbeError, match="unknown option.*text_column"):
        fit_and_save("1", data="x.csv", text_column="body")
    with pytest.raises(ProbeError, match="no readable sweep.json"):
        curve_and_save(from_sweep="/nonexistent/sweep.json")
