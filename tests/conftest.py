"""Shared fixtures: an isolated cache store, and tiny real models built in-process.

The tiny models run the real GPT-2 / BERT code paths of transformers in milliseconds, with
random weights: the same code a user's model runs, nothing mocked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMS_CSV = REPO / "data" / "sms_spam.csv"

VARIED_TEXTS = [
    "Hello world",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\nand   runs    of spaces",
    "unicode: naïve café, Straße, 日本語のテキスト, Ελληνικά, русский",
    "emoji 😀🎉👍🏽 and a ZWJ family 👨‍👩‍👧",
    "x",
    "a much longer text that goes on and on " * 12,
    "numbers 1234567890 3.14159 -42 1e10 and symbols !@#$%^&*()_+{}|:<>?",
    "'quotes' \"double\" `back` and ellipsis…",
]


@pytest.fixture(scope="session", autouse=True)
def checkout_store_untouched():
    """Every test works in a store of its own: the checkout's ./cache ends as it began (a
    test that undid its PROBE_CACHE, or a worker process started without it, fails here)."""
    store = REPO / "cache"

    def listing():
        return {p.relative_to(store) for p in store.rglob("*")}

    before = listing() if store.is_dir() else set()
    yield
    written = sorted(str(p) for p in (listing() if store.is_dir() else set()) - before)
    assert not written, f"tests wrote into {store}: {written[:5]}"


@pytest.fixture(scope="session", autouse=True)
def session_places(tmp_path_factory):
    """Session fixtures (built before any test's own folders) get a models folder and an
    outputs folder of the session's: nothing reaches the user's cache (``probe.files``)."""
    folder = tmp_path_factory.mktemp("session-places")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROBE_MODELS", str(folder / "models"))
        patch.setenv("PROBE_OUT", str(folder / "results"))
        yield folder


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own feature store and models folder: no test touches ./cache or
    the user's cache (``probe.files``), and no result lands in ./results."""
    store = tmp_path / "store"
    monkeypatch.setenv("PROBE_CACHE", str(store))
    monkeypatch.setenv("PROBE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PROBE_OUT", str(tmp_path / "results"))
    return store


@pytest.fixture(autouse=True)
def unconfigured_channel():
    """Every test starts with the ``probe`` logger as a library user finds it (no stderr
    channel, no level): a CLI run in-process (``run_probe``), in this test or in an earlier
    one or a fixture, configures it for its command, and that must not leak into a library
    call's silence."""
    import logging

    from probe.messages import LOGGER, _CurrentStderr

    def reset():
        LOGGER.handlers[:] = [h for h in LOGGER.handlers if not isinstance(h, _CurrentStderr)]
        LOGGER.setLevel(logging.NOTSET)
        LOGGER.propagate = True

    reset()
    yield
    reset()


@pytest.fixture
def said():
    """The lines library code said through ``probe.messages`` in this test (every level), in
    order: what the CLI would print, checked without the CLI."""
    import logging

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("probe")
    handler, level = Collect(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A random 3-block GPT-2 with the real 50257-token vocabulary, saved to disk."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=50257, n_positions=256)
    model = GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A random 2-layer BERT encoder with a WordPiece tokenizer trained on varied text."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    corpus = VARIED_TEXTS + SMS_CSV.read_text(encoding="utf-8").splitlines()[:500]
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus, vocab_size=600, min_frequency=1)
    folder = tmp_path_factory.mktemp("tiny-bert")
    wordpiece.save_model(str(folder))
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    BertModel(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture
def sms_subset(tmp_path):
    """The first 40 SMS messages as a CSV: real text, real labels, fast."""
    import pandas as pd

    path = tmp_path / "sms40.csv"
    pd.read_csv(SMS_CSV).head(40).to_csv(path, index=False)
    return path


def probe_env(store: Path) -> dict:
    """Environment for a real ``python -m probe`` subprocess."""
    env = dict(os.environ)
    env["PROBE_CACHE"] = str(store)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def cli_args(command: str, *positional, **options) -> list[str]:
    """``probe COMMAND`` as click arguments, options by keyword: ``out_dir=p`` is ``--out-dir
    p``, ``control=True`` a bare ``--control``, a tuple repeats its option (``concat=("1,3",
    "0,2")``), ``None`` and ``False`` leave it out; ``q=True`` is ``-q``, ``C=1`` is ``--C 1``."""
    args = [*command.split(), *map(str, positional)]
    for name, value in options.items():
        flag = f"-{name}" if name in ("q", "v") else "--" + name.replace("_", "-")
        for one in value if isinstance(value, tuple) else (value,):
            if one is True:
                args.append(flag)
            elif one is not None and one is not False:
                args += [flag, str(one)]
    return args


def probe_process(command: str, *positional, **options) -> list[str]:
    """``python -m probe COMMAND`` with ``cli_args``' arguments: a real process's argv."""
    return [sys.executable, "-m", "probe", *cli_args(command, *positional, **options)]


def run_probe(command: str, *positional, env: dict | None = None, **options):
    """``probe COMMAND`` run in-process (click's CliRunner) with ``cli_args``' arguments."""
    from click.testing import CliRunner

    from probe.cli.main import main

    return CliRunner().invoke(main, cli_args(command, *positional, **options), env=env)


@pytest.fixture
def sms_rows(tiny_gpt2_dir, sms_labelled) -> dict:
    """The data options of a head command (fit, sweep, curve) on the 90 labelled SMS texts
    and the tiny GPT-2: ``run_probe("sweep", **sms_rows, layers="1,3")``."""
    return {"model": tiny_gpt2_dir, "data": sms_labelled, "max_length": 48}


def write_sms90(path: Path, ids: bool = False) -> Path:
    """90 SMS messages (30 spam, 60 ham, shuffled), optionally with an ``id`` column: enough
    for a stratified split and cross-validation, small enough to extract in a second."""
    import pandas as pd

    frame = pd.read_csv(SMS_CSV)
    frame = pd.concat([frame[frame.label == "spam"].head(30), frame[frame.label == "ham"].head(60)])
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    if ids:
        frame.insert(0, "id", [f"m{i:03d}" for i in range(len(frame))])
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def sms_labelled(tmp_path):
    """``write_sms90`` with ids, per test."""
    return write_sms90(tmp_path / "sms90.csv", ids=True)


@pytest.fixture(scope="session")
def research_cache(tiny_gpt2_dir, tmp_path_factory):
    """A real extract of 450 distinct SMS texts with the tiny GPT-2, its features replaced
    (see ``research_data``); built once per session in its own store."""
    import h5py
    import numpy as np
    import pandas as pd

    from probe.data.readers import read_dataset
    from probe.features.extract import extract

    folder = tmp_path_factory.mktemp("research")
    frame = pd.read_csv(SMS_CSV).drop_duplicates("text").head(450)
    source = folder / "sms450.csv"
    frame.to_csv(source, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROBE_CACHE", str(folder / "store"))
        cache = extract(str(tiny_gpt2_dir), read_dataset(str(source)), "all", max_length=32)
    path = folder / "research.h5"
    path.write_bytes(Path(cache).read_bytes())
    rng = np.random.default_rng(0)
    classes = np.arange(450) % 3
    with h5py.File(path, "r+") as handle:
        n_layers, n, dim = handle["last"].shape
        for pool in ("last", "mean"):
            values = rng.normal(size=(n_layers, n, dim))
            for layer, strength in enumerate((0.0, 0.4, 1.0, 2.0)[:n_layers]):
                values[layer, np.arange(n), classes] += strength
            # off-centre and scaled, as hidden states are: refits must standardise like fits
            handle[pool][...] = (5.0 + 3.0 * values).astype(np.float16)
    return path, source, n_layers


@pytest.fixture
def research_data(tiny_gpt2_dir, research_cache):
    """Three-class ``CachedData`` from a real cache file (real text hashes) whose features
    make layer 0 pure noise and each later layer carry more of the class (row i: class
    i % 3): train 240, val 90, test 120 rows."""
    import numpy as np

    from probe.heads.cached import CachedData, CachedSplit

    path, source, n_layers = research_cache
    labels = np.array(["a", "b", "c"])[np.arange(450) % 3]

    def split(name, rows):
        return CachedSplit(name, [(str(path), rows)], labels[rows])

    return CachedData(
        train=split("train", np.arange(240)),
        val=split("val", np.arange(240, 330)),
        test=split("test", np.arange(330, 450)),
        model=str(tiny_gpt2_dir),
        model_fingerprint="synthetic",
        max_length=32,
        n_layers_model=n_layers - 1,
        layers=list(range(n_layers)),
        cache_keys={"train": "synthetic"},
        sources={"train": str(source)},
    )
