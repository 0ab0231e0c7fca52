"""`python -m pipeline quality`: how good is every strategy on markets other than our own demo?

For each market (our demo generator, the independent simulator's presets in pipeline/demo/markets.py, the
real Instacart sample of pipeline/demo/real.py) and each exclusion rule it does a real, unpublished run
(`pipeline.run.execute(..., publish=False)`) into a throwaway database, then reads back what the run
stored -- the `evaluation` rows and the run's own record of its strategy and seconds -- so the table shows
exactly what an analyst would see. Strategies are whatever the run evaluated: a new one shows up by itself.
One table per rule (markets x strategies); the best recall@100 of each market and the strategy the run
would publish are marked. Progress goes to stderr, the tables to stdout (and --out).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import EXCLUDE_RULES
from pipeline.evaluation.certainty import certainty, lead_text
from pipeline.evaluation.holdout import INNER
from store.errors import InputError

GENERATED = ("demo", "market", "repeat", "few-categories", "no-catalogue")
MARKETS = (*GENERATED, "real")
DEFAULT_MARKETS = ("demo", "repeat", "few-categories", "no-catalogue", "real")
DEFAULT_ROWS = 150_000
DEFAULT_SEED = 7
# (column title, k, metric) read from the evaluation table; recall is the micro recall, the headline.
COLUMNS = (("recall@10", 10, "recall_micro"), ("recall@100", 100, "recall_micro"),
           ("hit rate@100", 100, "hit_rate"), ("coverage@100", 100, "user_coverage"))
BEST = ("recall@100", 100, "recall_micro")
# Which evaluation rows a table shows: the outer holdout (what is reported) or the inner split of the fitting
# period (what the run chooses on; compare variants on these, then report the holdout's).
SPLITS = {"holdout": "", "inner": INNER}


@dataclass
class MarketRun:
    """What one unpublished run stored: its evaluation rows and its own record of the run."""
    market: str
    rule: str
    evaluation: pd.DataFrame      # strategy, cap, k, metric, value (as the table holds them)
    published: str                # the strategy the run chose to rank its audiences
    selection: str                # how it was chosen (runs.params.strategy_selection)
    seconds: dict[str, float]     # per strategy, inside the evaluate stage (runs.summary)
    stats: dict[str, float]       # the run's `stats` rows: its size and the holdout's
    inner_seconds: dict[str, float]  # per strategy, on the inner split

    @property
    def ceiling(self) -> float:
        """The holdout's reachable_ceiling@100: no ranking of known users does better."""
        return ceiling_of(self.evaluation)


def add_parser(sub) -> None:
    """Register `quality` on the pipeline's subcommand parser."""
    q = sub.add_parser("quality", help="every strategy's holdout quality on several markets and rules",
                       description="Run (unpublished, in a throwaway DB) every market x exclusion rule and "
                                   "print the evaluation the run stored, one table per rule.")
    q.add_argument("--markets", default=",".join(DEFAULT_MARKETS), help="comma list of: " + ", ".join(MARKETS))
    q.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows per generated market (the real one "
                   "keeps whole users up to this many rows)")
    q.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the simulated markets (demo: 42)")
    q.add_argument("--exclude", default=",".join(EXCLUDE_RULES), help="comma list of: " + ", ".join(EXCLUDE_RULES))
    q.add_argument("--strategies", default="", help="comma list of strategies to show (default: every one "
                   "the run evaluated; all are evaluated either way, so the published choice is the run's)")
    q.add_argument("--split", default="holdout", help="comma list of: holdout (the outer holdout, what is "
                   "reported), inner (the inner split of the fitting period, what the run chooses on)")
    q.add_argument("--out", help="also write the tables to this Markdown file")


def parse_names(text: str, allowed, flag: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise InputError(f"{flag}: {', '.join(unknown) or 'nothing given'} is not one of {', '.join(allowed)}")
    return list(dict.fromkeys(names))


MIN_ROWS = 1000


def check_rows(rows: int) -> None:
    """A generated market needs enough rows for a holdout with products on both sides."""
    if rows < MIN_ROWS:
        raise InputError(f"--rows must be at least {MIN_ROWS} (a holdout needs products on both sides), got {rows}")


def _check(args: argparse.Namespace) -> tuple[list[str], list[str], list[str], list[str]]:
    from pipeline.strategies import STRATEGIES
    markets = parse_names(args.markets, MARKETS, "--markets")
    rules = parse_names(args.exclude, EXCLUDE_RULES, "--exclude")
    shown = parse_names(args.strategies, list(STRATEGIES), "--strategies") if args.strategies.strip() else []
    splits = parse_names(args.split, list(SPLITS), "--split")
    check_rows(args.rows)
    if "real" in markets:
        from pipeline.demo.real import sample_path
        sample_path()  # fail before any run when the package is missing
    return markets, rules, shown, splits


def prepare_market(name: str, rows: int, seed: int, workdir: Path) -> tuple[Path, Path | None]:
    """Write one market's files; (interactions, catalogue or None)."""
    out = workdir / name
    if name == "demo":
        from pipeline.demo import DEMO_SEED
        from pipeline.demo.generate import generate
        info = generate(rows=rows, seed=DEMO_SEED, out_dir=out)
    elif name == "real":
        from pipeline.demo.real import write_real
        info = write_real(out, rows)
    else:
        from pipeline.demo.markets import write_market
        info = write_market(out, rows, seed, name)
    products = info.get("products_path")
    return Path(info["interactions_path"]), Path(products) if products else None


def stored_run(db: Path, run_id: int, market: str, rule: str) -> MarketRun:
    """Read back what the run stored (the evaluation table and the runs row), not what it returned."""
    from store import queries
    con = queries.connect(db)
    try:
        rows = pd.read_sql_query("SELECT strategy, cap, k, metric, value FROM evaluation WHERE run_id = ?",
                                 con, params=[run_id])
        run = queries.run(con, run_id)
        stats = queries.stats(con, run_id)
    finally:
        con.close()
    return MarketRun(market, rule, rows, run["params"].get("strategy", ""),
                     run["params"].get("strategy_selection", ""),
                     (run["summary"] or {}).get("strategy_seconds", {}),
                     stats,
                     (run["summary"] or {}).get("inner_strategy_seconds", {}))


def ceiling_of(evaluation: pd.DataFrame, split: str = "holdout") -> float:
    """reachable_ceiling@100 of a split: no ranking of the known users does better (nan: not stored)."""
    found = evaluation.loc[(evaluation["k"] == 100)
                           & (evaluation["metric"] == SPLITS[split] + "reachable_ceiling"), "value"]
    return float(found.max()) if len(found) else float("nan")


def run_market(market: str, rule: str, interactions: Path, catalogue: Path | None, db: Path) -> MarketRun:
    from pipeline.config import RunParams
    from pipeline.run import execute
    from pipeline.strategies import AUTO
    result = execute(interactions, db=db, params=RunParams(strategy=AUTO, exclude=rule), products_path=catalogue,
                     publish=False, source=f"quality: {market}, --exclude {rule}")
    return stored_run(db, result.run_id, market, rule)


def quality_table(run: MarketRun, shown: list[str] | None = None, split: str = "holdout") -> pd.DataFrame:
    """One market under one rule on one split: a row per uncapped strategy with the COLUMNS, seconds and marks."""
    rows = run.evaluation[run.evaluation["cap"].isna()]
    prefix = SPLITS[split]
    rows = rows[rows["metric"].str.startswith(prefix)] if prefix else rows[~rows["metric"].str.startswith(INNER)]
    rows = rows.assign(metric=rows["metric"].str[len(prefix):])
    wide = rows.pivot_table(index="strategy", columns=["k", "metric"], values="value", aggfunc="first")
    table = pd.DataFrame({title: wide[(k, metric)] if (k, metric) in wide.columns else float("nan")
                          for title, k, metric in COLUMNS}, index=wide.index)
    if shown:
        table = table.loc[[s for s in shown if s in table.index]]
    seconds = run.inner_seconds if split == "inner" else run.seconds
    table["seconds"] = [seconds.get(s, float("nan")) for s in table.index]
    table["vs published@100"] = table.index.map(versus_published(rows, run.published)).fillna("")
    best = (table[BEST[0]] == table[BEST[0]].max()) & (table[BEST[0]] > 0)  # ties are all marked
    published = pd.Series(table.index == run.published, index=table.index)
    table["note"] = (best.map({True: "best@100", False: ""}) + (best & published).map({True: ", ", False: ""})
                     + published.map({True: "published", False: ""}))
    return table.sort_values([BEST[0], COLUMNS[0][0]], ascending=False, kind="stable").rename_axis("strategy").reset_index()


def versus_published(rows: pd.DataFrame, published: str) -> dict[str, str]:
    """Per strategy (uncapped rows of one split), its recall@100 minus the published strategy's with the
    95% interval of that difference and whether it is beyond chance; the published row: its own interval."""
    return {row.strategy: lead_text(row, published) for row in certainty(rows, published).itertuples()}


def format_rule(rule: str, runs: list[MarketRun], shown: list[str] | None = None, split: str = "holdout") -> str:
    """A Markdown table for one rule on one split, markets one after another."""
    title = f"### --exclude {rule}" + (", inner split (what the run chooses on)" if split == "inner" else "")
    lines = [title, "",
             "| market | strategy | " + " | ".join(t for t, _, _ in COLUMNS) + " | seconds | vs published@100 | note |",
             "|---|---|" + "---:|" * (len(COLUMNS) + 2) + "---|"]
    for run in runs:
        for _, row in quality_table(run, shown, split).iterrows():
            cells = [f"{row[t]:.4f}" for t, _, _ in COLUMNS] + [f"{row['seconds']:.2f}", row["vs published@100"]]
            lines.append(f"| {run.market} | {row['strategy']} | " + " | ".join(cells) + f" | {row['note']} |")
    lines.append("")
    lines += [f"- {r.market}: {_size(r.stats)}; reachable ceiling@100 {ceiling_of(r.evaluation, split):.4f}; "
              f"published `{r.published}` ({r.selection})" for r in runs]
    return "\n".join(lines) + "\n"


def _size(stats: dict[str, float]) -> str:
    names = (("total_interactions", "rows"), ("unique_users", "users"), ("unique_products", "products"),
             ("holdout_products", "products evaluated"))
    return ", ".join(f"{stats[n]:,.0f} {label}" for n, label in names if n in stats)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_quality(args: argparse.Namespace) -> int:
    markets, rules, shown, splits = _check(args)
    by_rule: dict[str, list[MarketRun]] = {rule: [] for rule in rules}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        work = Path(tmp)
        for market in markets:
            _say(f"quality: {market}: writing {args.rows:,} rows")
            interactions, catalogue = prepare_market(market, args.rows, args.seed, work)
            for rule in rules:
                t0 = time.perf_counter()
                db = work / f"{market}-{rule}.db"
                by_rule[rule].append(run_market(market, rule, interactions, catalogue, db))
                for leftover in work.glob(f"{db.name}*"):
                    leftover.unlink()
                _say(f"quality: {market} --exclude {rule}: {time.perf_counter() - t0:.1f} s")
    command = " ".join(["python -m pipeline quality", *sys.argv[2:]]) if sys.argv[1:2] == ["quality"] else ""
    text = (f"## Strategy quality across markets ({args.rows:,} rows per market, seed {args.seed})\n\n"
            + (f"`{command}` -- {time.perf_counter() - started:.0f} s\n\n" if command else "")
            + "\n".join(format_rule(rule, runs, shown, split) for split in splits for rule, runs in by_rule.items()))
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        _say(f"quality: wrote {args.out}")
    return 0
