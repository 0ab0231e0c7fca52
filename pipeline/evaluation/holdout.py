"""Temporal holdout: fit every strategy on the early part, score its audiences on the late part.

Two splits. The outer one (the run's holdout share) only reports: its rows are what the evaluation
table, the app and /metrics show. The strategy to publish is chosen on an inner split of the fitting
period (early part: the last horizon of it is the inner "late"), so the reported score of the winner is
not the score it was picked on. Both are stored; the inner rows carry the metric prefix "inner_".

The split is the run's (1 - holdout) quantile of event_date (the same instant as the `stats` split).
Strategies see only the early events and the features of the early users; the candidates are every
early user (no sampled negatives); the evaluated products are those seen in both parts; a product's
truth is everyone who interacted with it in the late part, including users the early part never saw
(they count against recall and the reachable ceiling says how much of that no ranking can recover).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from pipeline.config import RunParams
from pipeline.data.clean import bot_customers
from pipeline.data.diagnostics import split_instant
from pipeline.data.features import user_features
from pipeline.evaluation.calibration import calibration_table
from pipeline.evaluation.cap import CAP_CANDIDATES, cap_ranked, stack_blocks
from pipeline.evaluation.gain import gain_curve_rows
from pipeline.evaluation.metrics import Truth, evaluate_audiences, hits_of, make_truth, recall_standard_error
from pipeline.strategies import STRATEGIES, fitted, get_strategy
from pipeline.strategies.ranking import Exclusions, exclusions_for

KS = (10, 100)
MIN_DEPTH = max(KS)
HEADLINE = (100, "recall_micro")  # what `run` without --strategy maximizes
# On a tie (tiny data, or every strategy at zero) the reference method wins, then the more informed ones.
TIE_PREFERENCE = ("propensity", "engagement", "affinity", "itemknn", "als", "activity", "random")
INNER = "inner_"  # metric prefix of the rows the choice was made on
YARDSTICKS = ("random",)
PROBABILITIES = ("propensity",)  # strategies whose scores are probabilities: their calibration is kept


@dataclass
class Holdout:
    split: pd.Timestamp
    early: pd.DataFrame      # events before the split: all a strategy is given
    users: pd.DataFrame      # user features of the early events: the candidates
    products: np.ndarray     # evaluated product ids (seen in both parts), sorted
    truth: Truth
    reach: np.ndarray        # early users per evaluated product (the cap's fill order)
    excluded: Exclusions     # the rule's pairs of the evaluated products, found once for every strategy
    early_bots: pd.DataFrame | None = None  # rows of the users the early days alone show to be bots


@dataclass
class Scored:
    name: str
    metrics: dict[tuple[int, str], float]
    seconds: float
    cap: int | None = None  # the per-user exposure cap these audiences were capped to, if any
    # Summaries of the uncapped audiences, taken while they exist: keeping the (products x depth) arrays of
    # every strategy on both splits until the evaluation ends held ~4.5 GB at 5M rows.
    gain: pd.DataFrame | None = None         # the gain curve (pipeline.evaluation.gain)
    calibration: pd.DataFrame | None = None  # deciles of expected vs observed, for scores that are probabilities
    learned_from: tuple[int, int, int] | None = None  # a learned ranker's (engaged pairs, pairs, model families)
    # The truth pairs hit in the top HEADLINE k (sorted keys), and the split's truth (shared): the standard
    # errors of the headline and of its difference to the run's strategy (comparison_rows).
    hit_keys: np.ndarray | None = None
    truth: Truth | None = None


def window_days(events: pd.DataFrame, params: RunParams) -> float | None:
    """Length of the outer holdout window in days: the horizon every model predicts (None: no holdout)."""
    if params.holdout <= 0 or events.empty:
        return None
    return horizon_between(split_instant(events, params.holdout), events["event_date"].max())


def horizon_between(split: pd.Timestamp, latest: pd.Timestamp) -> float:
    """The outer holdout window from the split to the latest event, in days (at least one)."""
    return max((latest - split) / pd.Timedelta(days=1), 1.0)


def inner_split(latest_early: pd.Timestamp, horizon: float) -> pd.Timestamp:
    """The inner split: one horizon before the fitting part's latest event (its last horizon is the inner
    "late" part)."""
    return latest_early - pd.Timedelta(days=horizon)


def early_cleaned(early: pd.DataFrame, bot_rows: pd.DataFrame | None, split: pd.Timestamp, limit: int
                  ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The fitting part cleaned with what was known before the split: the bot filter judges the early
    days only, so a user who turns into a bot later keeps their early rows. Returns (early events, the
    early rows of the users still judged bots)."""
    if bot_rows is None or bot_rows.empty:
        return early, bot_rows
    before = bot_rows[(bot_rows["event_date"] < split).to_numpy()]
    still = before["customer_id"].isin(bot_customers(before, limit)).to_numpy()
    if still.all():
        return early, before
    back = before[~still]
    categories = early["event"].cat.categories.union(back["event"].cat.categories)
    both = pd.concat([early.assign(event=early["event"].cat.set_categories(categories)),
                      back.assign(event=back["event"].cat.set_categories(categories))])
    both = both.take(np.argsort(both["customer_id"].to_numpy(), kind="stable"))  # clean()'s order: by customer
    return both.reset_index(drop=True), before[still]


def make_holdout(events: pd.DataFrame, params: RunParams, split: pd.Timestamp | None = None,
                 bot_rows: pd.DataFrame | None = None) -> Holdout | None:
    """The split (default: the run's holdout quantile), or None when it leaves no product seen on both
    sides (nothing to evaluate). `bot_rows`: the rows cleaning dropped as bots' (judged on every day);
    the early part takes back those of users its own days do not show to be bots."""
    if params.holdout <= 0:
        return None
    split = split_instant(events, params.holdout) if split is None else split
    late_rows = (events["event_date"] >= split).to_numpy()
    early, late = events[~late_rows], events[late_rows]
    early, early_bots = early_cleaned(early, bot_rows, split, params.bot_daily_limit)
    products = np.intersect1d(early["product_id"].unique(), late["product_id"].unique())
    if early.empty or products.size == 0:
        return None
    users = user_features(early, params)
    ids = users["customer_id"].to_numpy()
    late = late.loc[late["product_id"].isin(products), ["product_id", "customer_id"]].drop_duplicates()
    truth_index = np.searchsorted(products, late["product_id"].to_numpy())
    at = np.minimum(np.searchsorted(ids, late["customer_id"].to_numpy()), len(ids) - 1)
    truth_positions = np.where(ids[at] == late["customer_id"].to_numpy(), at, -1)
    excluded = exclusions_for(early, users, params.exclude, products)
    truth = make_truth(truth_index, truth_positions, len(products), len(ids), excluded.index, excluded.rows)
    in_early = early[early["product_id"].isin(products)]
    reach = in_early.groupby("product_id")["customer_id"].nunique().reindex(products).to_numpy()
    return Holdout(split, early.reset_index(drop=True), users, products, truth, reach, excluded, early_bots)


def outer_holdout(events: pd.DataFrame, params: RunParams, bot_rows: pd.DataFrame | None = None
                  ) -> tuple[RunParams, Holdout | None]:
    """The run's outer holdout, and the params with its window as the horizon every model predicts."""
    params = replace(params, horizon_days=window_days(events, params))
    return params, make_holdout(events, params, bot_rows=bot_rows)


def inner_holdout(outer: Holdout, params: RunParams) -> Holdout | None:
    """The inner split of the outer holdout's fitting part (what the run chooses on); `params` carry the
    horizon (outer_holdout's)."""
    return make_holdout(outer.early, params, split=inner_split(outer.early["event_date"].max(), params.horizon_days),
                        bot_rows=outer.early_bots)


def score_strategy(name: str, holdout: Holdout, params: RunParams, catalogue: pd.DataFrame | None
                   ) -> list[Scored]:
    """Fit on the early part, build audiences, measure them. With a cap, every product the early part
    would serve is ranked and capped (the cap competes over all of them), then the evaluated subset is
    scored."""
    started = time.perf_counter()
    depth = max(params.depth, MIN_DEPTH)
    cap = params.max_audiences_per_user
    model = fitted(name, holdout.early, holdout.users, params, catalogue)
    positions, scores, sizes = stack_blocks(model.rank(holdout.products, holdout.excluded, depth),
                                            holdout.products)
    cells = hits_of(positions, sizes, holdout.truth)  # once for the metrics, the gain and the calibration
    plain = evaluate_audiences(positions, sizes, holdout.truth, KS, cells)
    gain = gain_curve_rows(name, positions, sizes, holdout.truth, cells)
    calibration = calibration_table(positions, scores, sizes, holdout.truth, cells) if name in PROBABILITIES else None
    out = [Scored(name, plain, time.perf_counter() - started, gain=gain, calibration=calibration,
                  learned_from=model.learned_from(), hit_keys=headline_hit_keys(positions, cells[1], holdout.truth),
                  truth=holdout.truth)]
    del positions, scores, sizes  # the capped ranking below needs its own, wider arrays
    if cap:
        started = time.perf_counter()
        served = np.sort(holdout.early["product_id"].unique())
        excluded = exclusions_for(holdout.early, holdout.users, params.exclude, served)
        wide = stack_blocks(model.rank(served, excluded, depth * CAP_CANDIDATES), served)
        reach = holdout.early.groupby("product_id")["customer_id"].nunique().reindex(served).to_numpy()
        capped = cap_ranked(*wide, holdout.users, params, excluded, reach, depth)
        rows = np.searchsorted(served, holdout.products)
        cells = hits_of(capped.positions[rows], capped.sizes[rows], holdout.truth)
        metrics = evaluate_audiences(capped.positions[rows], capped.sizes[rows], holdout.truth, KS, cells)
        out.append(Scored(name, metrics, time.perf_counter() - started, cap,
                          hit_keys=headline_hit_keys(capped.positions[rows], cells[1], holdout.truth),
                          truth=holdout.truth))
    return out


def headline_hit_keys(positions: np.ndarray, hits: np.ndarray, truth: Truth) -> np.ndarray:
    """Sorted keys (product index * users + position) of the truth pairs hit in the top HEADLINE k of
    the audiences (positions, and their hits_of cells)."""
    product, column = np.nonzero(hits[:, :HEADLINE[0]])
    return np.sort(product.astype(np.int64) * truth.n_users + positions[product, column])


def comparison_rows(scored: list[Scored], chosen: str, prefix: str = "") -> pd.DataFrame:
    """Evaluation rows saying how sure the headline is, at its k: every strategy's `recall_micro_se`, and
    for the others `recall_micro_diff_se`, the standard error of their recall minus the run's strategy's
    (`chosen`; its capped variant for capped rows), paired on the same truth pairs. A difference beyond
    1.96 standard errors is one chance would rarely give (metrics.versus). Products and users are both
    sampling units (metrics.recall_standard_error): a user who drives hits on several products ties them
    together."""
    k, metric = HEADLINE
    reference = {s.cap: s for s in scored if s.name == chosen and s.hit_keys is not None}
    rows = []
    for s in scored:
        if s.hit_keys is None:
            continue
        rows.append((s.name, s.cap, k, f"{prefix}{metric}_se", recall_standard_error(s.truth, s.hit_keys)))
        ref = reference.get(s.cap)
        if ref is not None and ref is not s:
            rows.append((s.name, s.cap, k, f"{prefix}{metric}_diff_se",
                         recall_standard_error(s.truth, s.hit_keys, ref.hit_keys)))
    frame = pd.DataFrame(rows, columns=["strategy", "cap", "k", "metric", "value"])
    frame["cap"] = pd.Series([r[1] for r in rows], dtype=object)  # None stays NULL
    return frame[np.isfinite(frame["value"].to_numpy(dtype=float))]


def evaluate_all(events: pd.DataFrame, params: RunParams, catalogue: pd.DataFrame | None,
                 names: list[str] | None = None, progress: Callable[[float], None] | None = None,
                 bot_rows: pd.DataFrame | None = None) -> tuple[Holdout | None, list[Scored], list[Scored]]:
    """(outer holdout, outer scores: reported, inner scores: the choice is made on these). `bot_rows`:
    what cleaning dropped as bots, so each fitting part judges bots on its own days only."""
    params, holdout = outer_holdout(events, params, bot_rows)
    if holdout is None:
        return None, [], []
    inner = inner_holdout(holdout, params)
    names = names or list(STRATEGIES)
    # The ALS fits every split will need start now on the second core, in the order they are needed; a
    # fit asked for again is not repeated. The strategies without any are scored first, meanwhile.
    splits = [split for split in (inner, holdout) if split is not None]
    waiting = [name for name in names
               if any([get_strategy(name).prefetch(split.early, split.users, params) for split in splits])]
    # The fit on every event (for the published strategy) is not queued here: at 5M rows, fitted during the
    # evaluation's last tasks, it took the run's peak from 7.2 to 8.6-8.9 GB (over the 8 GB target), and
    # when affinity is published (the 5M demo's choice) it is not needed at all. Queued once the inner split
    # had chosen propensity (during the outer holdout's tasks), the 500K bench took 45.6 / 46.3 s against
    # 45.9 / 45.8 s in alternate runs: on two cores the fit only moved from the audiences stage to the
    # evaluation's (19.4 -> 21.6 s), so it is not queued early either.
    # The strategies without ALS fits first, each split in turn; then those waiting for fits split by split
    # (propensity's inner split, als's, then their outer holdouts): als's inner split then runs while the
    # outer split's fit is still under way, instead of after it.
    tasks = [(name, split) for name in names if name not in waiting for split in splits]
    tasks += [(name, split) for split in splits for name in waiting]
    scored: list[Scored] = []
    chosen_on: list[Scored] = []
    # One strategy and split at a time. Scoring a strategy's inner split and outer holdout in two threads
    # took the 500K bench from 64.8 s to 62.2 s (CPU 144% -> 149%: the fits, pandas and numpy's small
    # steps hold the GIL) and its peak from 1.46 to 2.08 GB; at 5M rows two splits' arrays at once would
    # not fit the 8 GB target, so it was not taken.
    for i, (name, split) in enumerate(tasks):  # a handful of strategies, two splits
        if split is inner:
            chosen_on += score_strategy(name, split, params, catalogue)
        else:
            scored += score_strategy(name, split, params, catalogue)
        if progress:
            progress((i + 1) / len(tasks))
    position = {name: i for i, name in enumerate(names)}  # the tables list them in the registry's order
    return holdout, *(sorted(part, key=lambda s: position[s.name]) for part in (scored, chosen_on))


def best_strategy(scored: list[Scored], capped: bool) -> str:
    """The strategy with the best headline score (its capped variant's score when a cap is set).

    Publishing propensity unless another strategy led it beyond chance on the inner split was tried (the
    500K markets' inner splits were a coin toss between it and affinity; on their outer holdouts no
    strategy led it beyond chance): the 5M demo then served propensity (outer recall@100 0.00028 against
    affinity's 0.00026, within noise), and `pipeline bench --rows 5000000` took 627.0 s with a peak of
    10.0 GB (the targets: 450 s, 8 GB; 500K: 45.6-45.9 s), so the point scores still decide.

    `random` is the yardstick, not a candidate: with a handful of hits its score is noise, and
    publishing noise is never the better choice (force it with --strategy random)."""
    candidates = [s for s in scored if (s.cap is not None) == capped and s.name not in YARDSTICKS]
    if not candidates:
        return TIE_PREFERENCE[0]
    preference = {n: i for i, n in enumerate(TIE_PREFERENCE)}

    def key(s: Scored):
        return (-s.metrics[HEADLINE], -s.metrics[(100, "recall_macro")], -s.metrics[(100, "ndcg")],
                preference.get(s.name, len(preference)))
    return min(candidates, key=key).name


def holdout_stats(products: np.ndarray, n_users: int, truth: Truth, scored: list[Scored] | None = None
                  ) -> pd.DataFrame:
    """What the evaluation was run on, for the `stats` table (names beyond the contract's own); with
    `scored`, also how many engaged pairs propensity's ranker learned from in its outer-holdout fit (and
    how many model families it fitted: 0, too few to learn, it ranked by its prior)."""
    figures = {"holdout_products": len(products), "holdout_candidate_users": n_users,
               "holdout_truth_pairs": int(truth.truth_size.sum()), "holdout_known_truth_pairs": int(truth.pair_keys.size),
               "holdout_reachable_pairs": int(truth.reachable.sum())}
    for s in scored or []:
        if s.learned_from is not None and s.cap is None:
            for figure, value in zip(("training_engaged_pairs", "training_pairs", "model_families"), s.learned_from):
                figures[f"{s.name}_{figure}"] = value
    return pd.DataFrame({"name": list(figures), "value": [float(v) for v in figures.values()]})


def evaluation_rows(scored: list[Scored], prefix: str = "") -> pd.DataFrame:
    """Long rows for the `evaluation` table: strategy, cap, k, metric (with `prefix`), value."""
    rows = [(s.name, s.cap, k, prefix + metric, value) for s in scored for (k, metric), value in s.metrics.items()]
    frame = pd.DataFrame(rows, columns=["strategy", "cap", "k", "metric", "value"])
    frame["cap"] = pd.Series([s.cap for s in scored for _ in s.metrics], dtype=object)  # None stays NULL
    return frame


# The leaderboard as analysts see it (percent, random at 1x) is reports/tables.py's leaderboard().
