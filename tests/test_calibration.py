"""Calibration pooled over several demo draws (`python -m pipeline calibration`): the sums, the
acceptance's +-25% verdict, the chance ranges and the command's errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import calibration as command
from pipeline.cli.parser import main
from pipeline.evaluation.calibration import chance_range, pooled, within_tolerance


def _deciles(expected: list[float], observed: list[float], entries: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"decile": np.arange(1, len(expected) + 1), "entries": entries, "expected": expected,
                         "observed": observed, "observed_over_expected": np.divide(observed, expected)})


def test_pooling_sums_each_decile_over_the_draws():
    # decile 1: 10 + 30 expected, 12 + 38 observed -> 40 and 50, ratio 1.25, a perfect model 28-53;
    # decile 2: 10 + 10 expected, 4 + 16 observed -> 20 and 20, ratio 1.0, 12-29.
    table = pooled([_deciles([10, 10], [12, 4]), _deciles([30, 10], [38, 16], entries=50)])
    assert table["entries"].tolist() == [150, 150]
    assert table["expected"].tolist() == [40, 20] and table["observed"].tolist() == [50, 20]
    assert table["observed_over_expected"].tolist() == [1.25, 1.0]
    assert table["chance_low"].tolist() == [28, 12] and table["chance_high"].tolist() == [53, 29]


@pytest.mark.parametrize(("expected", "low", "high"), [
    (10.0, 4, 17),   # the figure the app's words quote
    (40.0, 28, 53),
    (0.0, 0, 0),     # nothing expected: nothing allowed
])
def test_the_chance_range_is_poissons_95_percent(expected, low, high):
    assert [int(x[0]) for x in chance_range(np.array([expected]))] == [low, high]


@pytest.mark.parametrize(("ratios", "within"), [
    ([1.0, 1.25, 0.75, 1.1, 0.9, 3.0], [True, True, True, True, True]),  # the 6th decile is not judged
    ([1.0, 1.26, 0.74, 1.0, 1.0], [True, False, False, True, True]),
    ([1.0, np.nan, 1.0, 1.0, 1.0], [True, False, True, True, True]),    # nothing expected: not met
])
def test_the_top_five_deciles_are_judged_within_25_percent(ratios, within):
    table = pd.DataFrame({"decile": np.arange(1, len(ratios) + 1), "observed_over_expected": ratios})
    assert within_tolerance(table).tolist() == within


@pytest.mark.parametrize(("text", "seeds"), [("42,1,2", [42, 1, 2]), (" 3 , 3,4 ", [3, 4])])
def test_seeds_are_a_comma_list(text, seeds):
    assert command.parse_seeds(text) == seeds


@pytest.mark.parametrize(("argv", "says"), [
    (["--seeds", "1,x"], "--seeds: '1,x' is not a comma list"),
    (["--seeds", ""], "--seeds: '' is not a comma list"),
    (["--rows", "10"], "--rows must be at least 1000"),
    (["--exclude", "some"], "--exclude must be one of all, purchased, none"),
    (["--split", "later"], "--split: later is not one of holdout, inner"),
    (["--split", "holdout,inner"], "--split: one of holdout, inner, got 'holdout,inner'"),
])
def test_bad_arguments_exit_2_with_one_line(argv, says, capsys):
    assert main(["calibration", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_command_prints_the_pooled_table_and_its_verdict(monkeypatch, capsys, tmp_path):
    # Two hand-made draws in place of fitted ones: top five deciles 20+20 expected each, observed 22+20
    # (1.05), 25+25 (1.25), 15+15 (0.75), 20+21 (1.025), 19+19 (0.95) -> all five within 25%: met.
    draws = {1: _deciles([20] * 5, [22, 25, 15, 20, 19]), 2: _deciles([20] * 5, [20, 25, 15, 21, 19])}
    monkeypatch.setattr(command, "draw_table", lambda rows, seed, params, workdir, split: draws[seed])
    out = tmp_path / "calibration.md"
    assert main(["calibration", "--rows", "5000", "--seeds", "1,2", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "2 draws of 5,000 rows, pooled" in printed.out
    assert "| 2 | 200 | 40.0 | 50 | 1.25 | 28-53 |" in printed.out
    assert "Top 5 deciles within +-25% of expected: 5 of 5 (met)." in printed.out
    assert "seed 2: top deciles' observed / expected 1.00, 1.25, 0.75, 1.05, 0.95 (100 engagements" in printed.err
    assert out.read_text().startswith("## propensity's calibration")


def test_a_draw_without_a_holdout_is_left_out_and_none_at_all_is_an_error(monkeypatch, capsys):
    monkeypatch.setattr(command, "draw_table", lambda rows, seed, params, workdir, split: None)
    assert main(["calibration", "--rows", "5000", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert "seed 1: no holdout to score, left out" in err and "no draw had a holdout to score; raise --rows" in err


@pytest.mark.parametrize("split", ["holdout", "inner"])
def test_one_real_draw_gives_ten_deciles_best_scores_first(tmp_path, split):
    from pipeline.config import RunParams
    table = command.draw_table(6000, 3, RunParams(), tmp_path, split)
    assert table["decile"].tolist() == list(range(1, 11))
    assert (table["min_score"].to_numpy()[:-1] >= table["max_score"].to_numpy()[1:]).all()
    assert (table["observed"] == table["observed"].round()).all() and table["expected"].sum() > 0
