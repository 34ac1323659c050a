"""Reading targets other than one class: numbers, label sets, 0/1 columns; each mistake one
line naming where it is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probe.data.targets import (
    indicator_columns,
    label_sets,
    numeric_label_notice,
    read_targets,
    strata,
    target_spec,
)
from probe.errors import ProbeError


def test_label_sets_are_parsed_and_their_mistakes_named():
    Y, names = label_sets(["sports| politics", "", None, "politics", " arts "], "|", "tags", "f")
    assert names == ["arts", "politics", "sports"]
    assert Y.tolist() == [[0, 1, 1], [0, 0, 0], [0, 0, 0], [0, 1, 0], [1, 0, 0]]
    with pytest.raises(ProbeError, match="^f: the column 'tags' holds no labels"):
        label_sets(["", " | ", None], "|", "tags", "f")
    with pytest.raises(ProbeError, match=r"--label-sep '\|' never occurs in 'tags'.* by ','"):
        label_sets(["a,b", "b"], "|", "tags", "f")
    with pytest.raises(ProbeError, match="by ' '"):
        label_sets(["sports politics", "sports", "politics"], "|", "tags", "f")
    _, names = label_sets(["human rights", "economy"], "|", "tags", "f")  # a label with a space
    assert names == ["economy", "human rights"]
    Y, _ = label_sets(["a,b", "b"], ",", "tags", "f")
    assert Y.tolist() == [[1, 1], [0, 1]]


def test_indicator_columns_read_flags_and_name_the_bad_cell():
    frame = pd.DataFrame({"past": ["1", "0", "True"], "neg": ["yes", "No", "FALSE"]})
    Y, names = indicator_columns(frame, ("past", "neg"), "f")
    assert names == ["past", "neg"] and Y.tolist() == [[1, 1], [0, 0], [1, 0]]
    assert Y.dtype == np.int8
    frame.loc[1, "neg"] = "maybe"
    with pytest.raises(ProbeError, match="^f: neg of row 2 is 'maybe'"):
        indicator_columns(frame, ("past", "neg"), "f")


def test_regression_targets_are_numbers_and_a_bad_cell_names_its_row():
    frame = pd.DataFrame({"lat": ["1.5", "-2", "3e1"], "lon": ["0", "1", "2"]})
    Y, names = read_targets(frame, target_spec("lat,lon", regression=True), "f.csv")
    assert names == ["lat", "lon"] and Y.tolist() == [[1.5, 0.0], [-2.0, 1.0], [30.0, 2.0]]
    frame.loc[2, "lon"] = "north"
    with pytest.raises(ProbeError, match="^f.csv: lon of row 3 is 'north', not a number"):
        read_targets(frame, target_spec("lat,lon", regression=True), "f.csv")
    with pytest.raises(ProbeError, match="no column 'alt'"):
        read_targets(frame, target_spec("lat,alt", regression=True), "f.csv")


def test_a_column_list_for_a_task_that_takes_one_is_one_line():
    with pytest.raises(ProbeError, match="--label-col names 2 columns; a classifier reads one"):
        target_spec("a,b")
    with pytest.raises(ProbeError, match="exclude each other"):
        target_spec("a", regression=True, multi_label=True)


def test_strata_span_the_range_and_the_rarest_label():
    values = np.arange(100, dtype=float)[:, None]
    found = strata(values, "regression")
    assert len(set(found)) == 10 and (found[:10] == found[0]).all()
    Y = np.array([[1, 0], [1, 1], [0, 0]], np.int8)
    assert strata(Y, "multi-label").tolist() == ["0", "1", "-1"]


def test_a_numeric_class_column_gets_a_notice():
    assert numeric_label_notice([str(y) for y in range(1900, 1950)], "year") is not None
    assert numeric_label_notice(["1", "2", "3"], "stars") is None
    assert numeric_label_notice([f"c{i}" for i in range(50)], "country") is None
