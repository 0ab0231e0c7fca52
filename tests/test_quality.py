"""`python -m pipeline quality`: reads what a run stored and lays it out per rule; bad arguments exit 2."""
from __future__ import annotations

import pandas as pd
import pytest

from pipeline.cli import quality
from pipeline.cli.parser import main
from pipeline.demo import real
from store import writer

# A hand-built evaluation of one run: three strategies uncapped, and one capped row that the table must
# ignore (the table shows uncapped audiences, the ones every strategy is compared on).
ROWS = [
    # strategy, cap, k, metric, value
    ("affinity", None, 10, "recall_micro", 0.02), ("affinity", None, 100, "recall_micro", 0.10),
    ("affinity", None, 100, "hit_rate", 0.30), ("affinity", None, 100, "user_coverage", 0.05),
    ("affinity", None, 100, "reachable_ceiling", 0.40),
    ("als", None, 10, "recall_micro", 0.03), ("als", None, 100, "recall_micro", 0.08),
    ("als", None, 100, "hit_rate", 0.25), ("als", None, 100, "user_coverage", 0.20),
    ("als", None, 100, "reachable_ceiling", 0.40),
    ("random", None, 10, "recall_micro", 0.0), ("random", None, 100, "recall_micro", 0.01),
    ("random", None, 100, "hit_rate", 0.02), ("random", None, 100, "user_coverage", 0.99),
    ("random", None, 100, "reachable_ceiling", 0.40),
    ("als", 5, 100, "recall_micro", 0.50),
    # the inner split's rows (what the run chose on), where als is ahead
    ("affinity", None, 100, "inner_recall_micro", 0.06), ("als", None, 100, "inner_recall_micro", 0.09),
    ("random", None, 100, "inner_recall_micro", 0.02), ("als", None, 10, "inner_recall_micro", 0.04),
    ("als", None, 100, "inner_reachable_ceiling", 0.30),
    # standard errors against the published als: its own 0.01; affinity's lead of 0.02 has 0.005 (its
    # interval 0.02 +- 0.0098 leaves out zero), random's gap of -0.07 has 0.05 (+-0.098 holds zero)
    ("als", None, 100, "recall_micro_se", 0.01), ("affinity", None, 100, "recall_micro_diff_se", 0.005),
    ("random", None, 100, "recall_micro_diff_se", 0.05),
]
SECONDS = {"affinity": 1.5, "als": 2.25, "random": 0.125}
INNER_SECONDS = {"affinity": 1.0, "als": 2.0, "random": 0.25}


def _evaluation() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=["strategy", "cap", "k", "metric", "value"])
    frame["cap"] = pd.Series([r[1] for r in ROWS], dtype=object)
    return frame


@pytest.fixture
def stored(tmp_path):
    """A database holding one finished run with the hand-built evaluation, as the pipeline writes it."""
    db = tmp_path / "q.db"
    wdb = writer.connect(db)
    run_id = writer.start_run(wdb, {"strategy": "auto"}, "test")
    writer.write_frame(wdb, "evaluation", run_id, _evaluation())
    writer.set_params(wdb, run_id, {"strategy": "als", "strategy_selection": "best on the inner split"})
    writer.write_frame(wdb, "stats", run_id, pd.DataFrame({"name": ["total_interactions", "unique_users",
                                                                    "holdout_products"], "value": [1200.0, 300.0, 40.0]}))
    writer.finish_run(wdb, run_id, {"strategy_seconds": SECONDS, "inner_strategy_seconds": INNER_SECONDS})
    return db, run_id


def test_the_run_is_read_back_from_the_database(stored):
    db, run_id = stored
    run = quality.stored_run(db, run_id, "demo", "all")
    assert (run.published, run.selection, run.seconds, run.ceiling) == (
        "als", "best on the inner split", SECONDS, 0.40)
    assert len(run.evaluation) == len(ROWS)


def test_the_table_ranks_by_recall_at_100_and_marks_best_and_published(stored):
    table = quality.quality_table(quality.stored_run(*stored, "demo", "all"))
    assert table["strategy"].tolist() == ["affinity", "als", "random"]
    assert table.iloc[0][["recall@10", "recall@100", "hit rate@100", "coverage@100", "seconds"]].tolist() == [
        0.02, 0.10, 0.30, 0.05, 1.5]
    # als's capped 0.50 is not its recall@100: the uncapped 0.08 is
    assert table.set_index("strategy").loc["als", "recall@100"] == 0.08
    assert table["note"].tolist() == ["best@100", "published", ""]


def test_the_inner_split_table_shows_what_the_run_chose_on(stored):
    table = quality.quality_table(quality.stored_run(*stored, "demo", "all"), split="inner").set_index("strategy")
    assert table.index.tolist() == ["als", "affinity", "random"]
    assert table["recall@100"].tolist() == [0.09, 0.06, 0.02]
    assert table.loc["als", "recall@10"] == 0.04 and table["hit rate@100"].isna().all()  # no inner hit rates stored
    assert table["seconds"].tolist() == [2.0, 1.0, 0.25]
    assert table["note"].tolist() == ["best@100, published", "", ""]
    text = quality.format_rule("all", [quality.stored_run(*stored, "demo", "all")], split="inner")
    assert text.splitlines()[0] == "### --exclude all, inner split (what the run chooses on)"
    assert "reachable ceiling@100 0.3000" in text.splitlines()[-1]  # the inner split's, not the holdout's 0.40


def test_shown_strategies_filter_the_rows(stored):
    table = quality.quality_table(quality.stored_run(*stored, "demo", "all"), ["random", "als"])
    assert table["strategy"].tolist() == ["als", "random"]
    assert table["note"].tolist() == ["best@100, published", ""]  # best among the rows shown


def test_the_markdown_table_for_one_rule(stored):
    text = quality.format_rule("purchased", [quality.stored_run(*stored, "repeat", "purchased")])
    lines = text.splitlines()
    assert lines[0] == "### --exclude purchased"
    assert lines[2] == ("| market | strategy | recall@10 | recall@100 | hit rate@100 | coverage@100 | seconds | "
                        "vs published@100 | note |")
    assert lines[4] == ("| repeat | affinity | 0.0200 | 0.1000 | 0.3000 | 0.0500 | 1.50 | +0.0200 ±0.0098 (higher) "
                        "| best@100 |")
    assert lines[5] == "| repeat | als | 0.0300 | 0.0800 | 0.2500 | 0.2000 | 2.25 | ±0.0196 | published |"
    assert lines[6] == ("| repeat | random | 0.0000 | 0.0100 | 0.0200 | 0.9900 | 0.12 | -0.0700 ±0.0980 (within noise) "
                        "|  |")
    assert lines[-1] == ("- repeat: 1,200 rows, 300 users, 40 products evaluated; reachable ceiling@100 0.4000; "
                         "published `als` (best on the inner split)")


def test_bench_prints_the_published_strategy_and_the_best_other_with_their_intervals(stored):
    from pipeline.cli.bench import holdout_lead
    # als (published) 0.08 +- 1.96 * 0.01; affinity's lead +0.02 +- 1.96 * 0.005 leaves out zero; random,
    # the yardstick, is never "the best other"
    assert holdout_lead(*stored) == "als 0.08000 ±0.01960 (95%); best other affinity +0.02000 ±0.00980 (higher)"


def test_a_small_market_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "q.md"
    assert main(["quality", "--markets", "market", "--rows", "3000", "--exclude", "none",
                 "--strategies", "random,engagement", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    rows = [line for line in printed.out.splitlines() if line.startswith("| market |") and "recall@" not in line]
    recall_100 = [float(r.split(" | ")[3]) for r in rows]
    assert recall_100 == sorted(recall_100, reverse=True)
    assert {r.split(" | ")[1] for r in rows} == {"random", "engagement"}
    assert "### --exclude none" in out.read_text()
    assert "quality: market --exclude none" in printed.err  # progress goes to stderr


@pytest.mark.parametrize("argv, says", [
    (["--markets", "demo,mars"], "--markets: mars"),
    (["--markets", ","], "--markets: nothing given"),
    (["--exclude", "some"], "--exclude: some"),
    (["--strategies", "magic"], "--strategies: magic"),
    (["--rows", "10"], "--rows must be at least 1000"),
    (["--split", "outer"], "--split: outer"),
])
def test_bad_arguments_exit_2_with_one_line(argv, says, capsys):
    assert main(["quality", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: " + says)


def test_the_real_market_without_its_package_exits_2_before_any_run(monkeypatch, capsys):
    monkeypatch.setattr(real.importlib.util, "find_spec", lambda name: None)
    assert main(["quality", "--markets", "real"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install" in err[0]
