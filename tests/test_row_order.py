"""The same events in another order make the same run: an export sorted another way, or the Spark engine's
collected events (grouped by customer, in no file order), must not change a score."""
from __future__ import annotations

from pipeline.config import RunParams
from pipeline.demo.generate import generate
from pipeline.run import execute


def test_rows_in_reverse_order_give_the_same_run(tmp_path, assert_same_runs):
    """Reversed, the file names the events in another first-seen order (the event codes the model reads)
    and lists a user's events at one instant the other way round (which one was their last)."""
    generate(rows=12000, seed=3, out_dir=tmp_path)
    source = tmp_path / "interactions.csv"
    header, *rows = source.read_text().splitlines()
    reverse = tmp_path / "reversed.csv"
    reverse.write_text("\n".join([header, *rows[::-1]]) + "\n")
    params = RunParams(depth=20, holdout=0.2, exclude="purchased", strategy="propensity")
    for path in (source, reverse):
        execute(path, db=tmp_path / f"{path.stem}.db", params=params, products_path=tmp_path / "products.csv")
    tables = assert_same_runs(tmp_path / "interactions.db", tmp_path / "reversed.db")
    propensity = tables["evaluation"].query("strategy == 'propensity' and metric == 'recall_micro' and k == 100")
    assert propensity["value"].item() > 0  # the model found engagements to be compared on
    assert len(tables["calibration"]) == 10 and len(tables["audience_reasons"]) > 0
