"""`python -m pipeline calibration`: is propensity's score a probability on the demo's holdout?

One demo holdout is too small to say: its top five deciles hold about 20 engagements each, so a perfectly
calibrated model lands within +-25% of expected in all five only about one time in ten. This command
draws the demo generator with several seeds, fits propensity on each draw's fitting part exactly as a run
does (pipeline.evaluation.holdout: the same outer holdout, horizon and bot rule), cuts each holdout's
audience entries into score deciles on their own, and sums the deciles over the draws. It prints every
draw's ratios (to stderr, as they come) and the pooled table with the range a perfect model would show
19 times in 20 (stdout, and --out).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.cli.quality import SPLITS, check_rows, parse_names
from pipeline.config import EXCLUDE_RULES, RunParams
from pipeline.demo import DEMO_ROWS, DEMO_SEED
from pipeline.evaluation.calibration import TOLERANCE, TOP_DECILES, pooled, within_tolerance
from store.errors import InputError

# The demo's own seed and nine more draws: ~90 engagements per top decile at the demo's size, where one
# draw's ~20 leave a perfect model inside +-25% in all five deciles 9-15% of the time.
DEFAULT_SEEDS = (DEMO_SEED, 1, 2, 3, 4, 5, 6, 7, 8, 9)
SPLIT_NAMES = {"holdout": "holdout", "inner": "inner split"}


def add_parser(sub) -> None:
    """Register `calibration` on the pipeline's subcommand parser."""
    c = sub.add_parser("calibration", help="propensity's expected vs observed engagements per score decile, "
                                           "pooled over several draws of the demo",
                       description="Fit propensity on several demo draws (one per seed) as a run does and "
                                   "print expected vs observed holdout engagements per score decile, summed "
                                   "over the draws.")
    c.add_argument("--rows", type=int, default=DEMO_ROWS, help="rows per demo draw")
    c.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="comma list of generator seeds")
    c.add_argument("--exclude", default=RunParams().exclude, help="exclusion rule: " + ", ".join(EXCLUDE_RULES))
    c.add_argument("--split", default="holdout", help="holdout (the outer holdout, what is reported) or inner "
                   "(the inner split of the fitting period, what a model's design is chosen on)")
    c.add_argument("--out", help="also write the table to this Markdown file")


def parse_seeds(text: str) -> list[int]:
    """'42, 1,2' -> [42, 1, 2]; one clear line on anything else."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise InputError(f"--seeds: {text!r} is not a comma list of non-negative whole numbers, e.g. 42,1,2")
    return list(dict.fromkeys(int(p) for p in parts))


def draw_table(rows: int, seed: int, params: RunParams, workdir: Path, split: str = "holdout"
               ) -> pd.DataFrame | None:
    """One demo draw's deciles for propensity on its outer holdout or inner split (None: the draw has no
    such split to score)."""
    from pipeline.data.clean import clean
    from pipeline.data.ingest import read_catalogue, read_events
    from pipeline.demo.generate import generate
    from pipeline.evaluation.holdout import inner_holdout, outer_holdout, score_strategy

    info = generate(rows=rows, seed=seed, out_dir=workdir)
    catalogue = read_catalogue(Path(info["products_path"])).products
    cleaned = clean(read_events(Path(info["interactions_path"])), params)
    params, holdout = outer_holdout(cleaned.events, params, cleaned.bot_rows)
    if holdout is not None and split == "inner":
        holdout = inner_holdout(holdout, params)
    if holdout is None:
        return None
    return score_strategy("propensity", holdout, params, catalogue)[0].calibration


def format_table(table: pd.DataFrame, draws: int, rows: int, split: str = "holdout") -> str:
    """The pooled deciles as Markdown, and the acceptance's verdict in one line."""
    ok = within_tolerance(table)
    lines = [f"## propensity's calibration on the demo {SPLIT_NAMES[split]}, {draws} draws of {rows:,} rows, pooled\n",
             "| decile | entries | expected | observed | observed / expected | a perfect model, 95% |",
             "|---:|---:|---:|---:|---:|---:|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.decile} | {row.entries:,} | {row.expected:.1f} | {row.observed:.0f} | "
                     f"{row.observed_over_expected:.2f} | {row.chance_low}-{row.chance_high} |")
    lines.append(f"\nTop {TOP_DECILES} deciles within +-{TOLERANCE:.0%} of expected: {int(ok.sum())} of {ok.size}"
                 f" ({'met' if ok.size == TOP_DECILES and ok.all() else 'not met'}).")
    return "\n".join(lines)


def cmd_calibration(args: argparse.Namespace) -> int:
    seeds = parse_seeds(args.seeds)
    check_rows(args.rows)
    split = parse_names(args.split, list(SPLITS), "--split")
    if len(split) != 1:
        raise InputError(f"--split: one of {', '.join(SPLITS)}, got {args.split!r}")
    split = split[0]
    params = RunParams(exclude=args.exclude).validate()
    tables = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="calibration-") as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            table = draw_table(args.rows, seed, params, Path(tmp) / str(seed), split)
            if table is None or table.empty:
                _say(f"calibration: seed {seed}: no {SPLIT_NAMES[split]} to score, left out")
                continue
            tables.append(table)
            top = table.head(TOP_DECILES)
            ratios = ", ".join(f"{r:.2f}" for r in top["observed_over_expected"])
            _say(f"calibration: seed {seed}: top deciles' observed / expected {ratios} "
                 f"({top['observed'].sum():.0f} engagements, {time.perf_counter() - t0:.1f} s)")
    if not tables:
        raise InputError("calibration: no draw had a holdout to score; raise --rows")
    text = format_table(pooled(tables), len(tables), args.rows, split) + f"\n\n{time.perf_counter() - started:.0f} s"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
        _say(f"calibration: wrote {args.out}")
    return 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
