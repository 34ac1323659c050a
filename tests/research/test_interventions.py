"""``probe intervene``: a direction planted in a tiny GPT-2 matters, random ones do not, and
projecting it out leaves a same-layer probe at chance.

The plant: three word pairs (" good"/" bad", ...) whose embeddings differ only along residual
dimension 0, so the class of a text (its last word) is carried by that one direction from
the embeddings up; a head fitted at layer 1 finds it, and the readouts at layers 2 and 3 read
it through the residual stream.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_probe

PAIRS = [(" good", " bad"), (" great", " awful"), (" happy", " sad")]
FILLERS = [
    "the day was",
    "my friend said it was",
    "this movie is",
    "the food tasted",
    "her answer sounded",
    "our trip felt",
    "the weather is",
    "his new song is",
    "that book was",
    "the service seemed",
    "their plan looks",
    "my week was",
    "the game was",
    "the hotel room was",
    "your idea is",
    "the ending felt",
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(model dir, data csv, head json): the planted model, 96 texts, a layer-1 last head.

    128 wide (the session's tiny GPT-2 is 32): a random direction then overlaps the planted
    one by about 1/sqrt(128), as in a real model it overlaps by less still."""
    import pandas as pd
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from probe.features.models.tokenize import TiktokenGPT2

    folder = tmp_path_factory.mktemp("planted")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=3, n_embd=128, n_head=2, vocab_size=50257, n_positions=64)
    model = GPT2LMHeadModel(config).eval()
    tokenizer = TiktokenGPT2()
    with torch.no_grad():
        table = model.transformer.wte.weight
        for positive, negative in PAIRS:
            (pos,), (neg,) = tokenizer.encode([positive, negative], 8, False).token_ids
            table[pos] = table[neg]
            table[pos, 0] += 0.5
            table[neg, 0] -= 0.5
    model.save_pretrained(folder / "model")
    rows = [
        {"text": f"{filler}{word}", "label": label}
        for filler in FILLERS
        for pair in PAIRS
        for word, label in zip(pair, ("pos", "neg"), strict=True)
    ]
    data = folder / "planted.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    head = folder / "head.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROBE_CACHE", str(folder / "store"))
        fitted = run_probe(
            "fit",
            model=folder / "model",
            data=data,
            layer=1,
            pool="last",
            max_length=16,
            out=head,
            q=True,
        )
    assert fitted.exit_code == 0, fitted.output
    return folder / "model", data, head


@pytest.fixture(scope="module")
def result(planted):
    from probe.interventions.dose import intervene

    _, data, head = planted
    return intervene(
        str(head),
        str(data),
        alphas=(-2.0, 0.0, 2.0),
        seeds=5,
        n_resamples=300,
        verbalizers={"pos": " good", "neg": " bad"},
    )


def rows_at(result, alpha):
    return {row["readout"]: row for row in result["dose"] if row["alpha"] == alpha}


def test_the_direction_moves_later_readouts_and_random_directions_do_not(result):
    assert result["target"] == "pos" and result["readouts"][:2] == ["layer 2", "layer 3"]
    for alpha, sign in ((2.0, 1.0), (-2.0, -1.0)):
        for name in ("layer 2", "layer 3"):
            row = rows_at(result, alpha)[name]
            low, high = row["effect_ci"]
            assert row["moved"] and sign * low > 0 and sign * high > 0, row
            assert sign * row["head_shift"] > 0.2, row
            assert abs(row["random_shift"]) < 0.3 * abs(row["head_shift"]), row
    still = rows_at(result, 0.0)["layer 2"]
    assert still["effect"] == 0.0 and not still["moved"]


def test_the_verbalizers_follow_the_direction(result):
    up, down = rows_at(result, 2.0)["verbalizers"], rows_at(result, -2.0)["verbalizers"]
    assert up["effect_ci"][0] > 0 and down["effect_ci"][1] < 0


def test_erasing_the_direction_leaves_a_same_layer_probe_at_chance(result):
    erasure = result["erasure"]
    probe = erasure["same_layer_probe"]
    assert erasure["rank"] == 1
    assert probe["clean"] >= 0.9
    assert probe["erased"] <= probe["chance"] + 0.15, probe
    assert probe["random_erased"] >= 0.8  # a random subspace of the same rank removes little
    later = {row["readout"]: row for row in erasure["readouts"]}
    assert later["layer 2"]["clean"] >= 0.9 and later["layer 2"]["erased"] <= 0.75
    assert later["layer 2"]["effect_ci"][1] < 0


def test_the_mean_difference_eraser_without_concept_erasure(monkeypatch):
    import sys

    from probe.interventions.directions import MEAN_DIFFERENCE, fit_eraser

    monkeypatch.setitem(sys.modules, "concept_erasure", None)  # import fails
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 50)
    features = rng.normal(size=(150, 8)) + 3.0 * (labels[:, None] == ["a", "b", "c", *"x" * 5])
    eraser = fit_eraser(features, labels)
    erased = eraser(features)
    assert eraser.method == MEAN_DIFFERENCE and eraser.rank == 2
    means = np.stack([erased[labels == k].mean(axis=0) for k in "abc"])
    np.testing.assert_allclose(means - means[0], 0.0, atol=1e-9)


def test_the_readings_of_alphas_and_verbalizers():
    from probe.errors import ProbeError
    from probe.interventions.directions import parse_alphas
    from probe.interventions.dose import parse_verbalizers

    assert parse_alphas("2, -1,0,2") == (-1.0, 0.0, 2.0)
    assert parse_verbalizers('1=" True",0=" False"') == {"1": " True", "0": " False"}
    for bad in ("1,x", "1,nan", ""):
        with pytest.raises(ProbeError):
            parse_alphas(bad)
    with pytest.raises(ProbeError):
        parse_verbalizers('1=" True"')


def test_the_command_writes_its_files_and_prints_json(planted, tmp_path):
    _, data, head = planted
    out = tmp_path / "intervene"
    done = run_probe(
        "intervene",
        head=head,
        data=data,
        alphas="0,1,2",
        seeds=2,
        no_erase=True,
        out_dir=out,
        json=True,
        q=True,
    )
    assert done.exit_code == 0, done.output
    printed = json.loads(done.output)
    assert printed["alphas"] == [0.0, 1.0, 2.0] and printed["erasure"] is None
    assert {p.name for p in out.iterdir()} == {"intervene.md", "intervene.json", "intervene.png"}
    assert "| layer 2 | 2 |" in (out / "intervene.md").read_text()
    page = run_probe("report", tmp_path, out=tmp_path / "report.html", q=True)
    assert page.exit_code == 0, page.output
    text = (tmp_path / "report.html").read_text()
    assert "Intervention at layer 1 toward &#x27;pos&#x27;" in text and "<svg" in text


@pytest.mark.parametrize(
    "options, message",
    [
        ({"alphas": "1,x"}, "--alphas: 'x' is not a number"),
        ({"alphas": "1", "model": "OTHER"}, "was fitted on model"),
    ],
)
def test_bad_input_is_one_line(planted, tiny_gpt2_dir, options, message):
    _, data, head = planted
    if options.get("model") == "OTHER":
        options = {**options, "model": tiny_gpt2_dir}  # the unplanted model: another one
    done = run_probe("intervene", head=head, data=data, **options)
    assert done.exit_code == 1
    assert message in done.output and len(done.output.strip().splitlines()) == 1, done.output


@pytest.mark.parametrize("reading", [{"site": "attn", "pool": "last"}, {"pool": "max"}])
def test_a_head_at_another_site_or_position_is_one_line(planted, tmp_path, reading):
    """The edit is made on the residual stream after a block at last/mean positions: a head
    that read elsewhere is refused before any pass, not edited at the wrong place."""
    model, data, _ = planted
    head = tmp_path / "elsewhere.json"
    fitted = run_probe("fit", model=model, data=data, layer=1, out=head, q=True, **reading)
    assert fitted.exit_code == 0, fitted.output
    done = run_probe("intervene", head=head, data=data, alphas="1")
    assert done.exit_code == 1
    assert "intervene edits the residual stream after a block" in done.output, done.output
