"""propensity's ranker on feature matrices built in the test: what it reads, and its calibration."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.evaluation.calibration import calibration_bins
from pipeline.strategies import propensity_model
from pipeline.strategies.propensity_data import FEATURES


def pair_market(rng: np.random.Generator, n: int, rate: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with every pair feature uniform in [0, 1), engaging with chance rate x comeback x category
    share x frequency x (0.2 + the product's users): a product's popularity scales all its candidates alike,
    and the user's profile (frequency) matters beside comeback."""
    x = rng.random((n, len(FEATURES))).astype(np.float32)
    column = {f: x[:, FEATURES.index(f)] for f in FEATURES}
    return x, rate * column["comeback"] * column["category_share"] * column["frequency"] * (
        0.2 + column["product_users"])


@pytest.mark.parametrize("rate, positives, reads_profile", [
    (0.06, 312, False),   # few engaged pairs: the profile would be noise beside comeback
    (0.3, 1546, True),    # plenty (PROFILE_POSITIVES is 1,000): the profile is learned
])
def test_the_ranker_reads_the_users_profile_only_from_plenty_of_engaged_pairs(rate, positives, reads_profile):
    # Reshuffling the profile columns among fresh pairs leaves every score as it was when the ranker did not
    # read them, and moves the scores when it did.
    rng = np.random.default_rng(4)
    x, chance = pair_market(rng, 60_000, rate)
    labels = rng.random(len(x)) < chance
    assert labels.sum() == positives
    ranker = propensity_model.fit_ranker(x, labels, np.arange(len(x)) % 300, seed=0, names=FEATURES)
    fresh, _ = pair_market(rng, 20_000)
    shuffled = fresh.copy()
    for name in propensity_model.PROFILE:
        column = FEATURES.index(name)
        shuffled[:, column] = rng.permutation(shuffled[:, column])
    assert not np.array_equal(shuffled, fresh)
    assert np.array_equal(ranker.predict(shuffled), ranker.predict(fresh)) != reads_profile


def test_the_trees_let_a_products_features_shift_its_level_not_reorder_its_candidates():
    # The same 20K candidates as if of an unpopular, old product (product features 0.1) and of a popular,
    # new one (0.9): every fold's trees give each candidate the same log-odds difference between the two,
    # so the two audiences come in the same order. Without the names (no constraints) the trees learn the
    # product's popularity with the ties, and the difference ranges over several log-odds.
    rng = np.random.default_rng(4)
    x, chance = pair_market(rng, 60_000)
    labels = rng.random(len(x)) < chance
    fresh, _ = pair_market(rng, 20_000)
    unpopular, popular = fresh.copy(), fresh.copy()
    for name in propensity_model.PRODUCT_LEVEL:
        unpopular[:, FEATURES.index(name)], popular[:, FEATURES.index(name)] = 0.1, 0.9

    def spread(names) -> list[float]:
        ranker = propensity_model.fit_ranker(x, labels, np.arange(len(x)) % 300, seed=0, names=names)
        read = (lambda m: m) if ranker.columns is None else (lambda m: m[:, ranker.columns])
        trees = [c.estimator.estimator_ for c in ranker.members[0].model.calibrated_classifiers_]
        return [np.ptp(t.decision_function(read(popular)) - t.decision_function(read(unpopular))) for t in trees]

    assert max(spread(FEATURES)) < 1e-9
    assert min(spread(None)) > 1.0


@pytest.mark.parametrize("rate, names, apart", [
    (0.06, FEATURES, True),    # few engaged pairs: sigmoid calibration, the profile not read
    (0.3, FEATURES, True),     # plenty: isotonic calibration, every column read
    (0.06, None, False),       # no names, no constraints: each pair is rebuilt at its level and scored
    (0.0005, FEATURES, False),  # under MIN_POSITIVES: the prior, which reads no product level
])
def test_scoring_pairs_at_other_product_levels_equals_scoring_the_rebuilt_pairs(rate, names, apart):
    # 3,000 users described at two levels (as two categories' first groups), read at three groups' levels:
    # the log-odds shortcut gives what scoring each (user, group) pair's own feature row gives.
    rng = np.random.default_rng(5)
    x, chance = pair_market(rng, 60_000, rate)
    ranker = propensity_model.fit_ranker(x, rng.random(len(x)) < chance, np.arange(len(x)) % 300, seed=0,
                                         names=names)
    assert ranker.level_apart == apart
    rows, _ = pair_market(rng, 3_000)
    level = propensity_model.LEVEL
    rows[:, level] = np.where(np.arange(3_000)[:, None] < 1_500, 0.1, 0.5)
    levels, _ = pair_market(rng, 3)
    levels[:, level] = np.array([[0.2], [0.7], [0.9]])
    at, by = rng.integers(0, 3_000, 10_000), rng.integers(0, 3, 10_000)
    rebuilt = rows[at]
    rebuilt[:, level] = levels[by][:, level]
    assert np.allclose(ranker.predict_at_levels(rows, levels, at, by), ranker.predict(rebuilt), rtol=1e-9, atol=0)
    # a learned ranker reads the level (product_users drives the chance): the rows at their own level differ
    assert np.allclose(ranker.predict(rows[at]), ranker.predict(rebuilt)) != bool(ranker.members)
    if ranker.members and not apart:  # unconstrained trees mix the level with the ties: the shortcut would be wrong
        shortcut = dataclasses.replace(ranker, level_apart=True).predict_at_levels(rows, levels, at, by)
        assert not np.allclose(shortcut, ranker.predict(rebuilt), rtol=1e-6, atol=0)


def test_each_familys_score_is_what_calibratedclassifiercv_predicts():
    # Member.raw then Member.calibrated take sklearn's two steps by hand (so a product's level can be moved
    # between them): together they give CalibratedClassifierCV.predict_proba's probability.
    rng = np.random.default_rng(6)
    x, chance = pair_market(rng, 60_000)
    ranker = propensity_model.fit_ranker(x, rng.random(len(x)) < chance, np.arange(len(x)) % 300, seed=0,
                                         names=FEATURES)
    fresh, _ = pair_market(rng, 5_000)
    read = fresh if ranker.columns is None else fresh[:, ranker.columns]
    for member in ranker.members:
        inputs = read if member.features is None else member.features.transform(read)
        assert np.allclose(member.calibrated(member.raw(read)).mean(axis=0), member.model.predict_proba(inputs)[:, 1],
                           rtol=1e-12, atol=0)


@pytest.mark.parametrize(("trees", "linear", "sigmoid", "score"), [
    # (fold 1, fold 2) probabilities of each family; the stack's sigmoid (slope, intercept) of the mean of
    # the two log-odds. 0.5 and 0.1: log-odds 0 and -2.197, their mean -1.099 = log(1/3): 0.25, where the
    # mean of the probabilities says 0.3.
    ((0.5, 0.5), (0.1, 0.1), (1.0, 0.0), 0.25),
    ((0.2, 0.2), (0.2, 0.2), (1.0, 0.0), 0.2),         # agreeing families: their probability
    ((0.2, 0.5), (0.2, 0.5), (1.0, 0.0), 0.35),        # fold 1 says 0.2, fold 2 0.5: their mean
    ((0.5, 0.5), (0.5, 0.5), (1.0, np.log(3)), 0.75),  # shifted by log 3: odds 3, 0.75
    ((0.5, 0.5), (0.1, 0.1), (2.0, 0.0), 0.1),         # twice as steep: -2.197, odds 1/9, 0.1
])
def test_the_score_is_the_folds_mean_of_the_stacked_log_odds(trees, linear, sigmoid, score):
    from sklearn.linear_model import LogisticRegression

    class Fixed:  # a family whose folds' calibrated probabilities are given
        def __init__(self, folds):
            self.folds = np.array(folds, dtype=float)[:, None]

        def calibrated(self, raw):
            return self.folds

    stack = LogisticRegression()
    stack.coef_, stack.intercept_, stack.classes_ = np.array([[sigmoid[0]]]), np.array([sigmoid[1]]), np.array([False, True])
    ranker = propensity_model.Ranker([Fixed(trees), Fixed(linear)], stack)
    assert ranker._calibrated([None, None]) == pytest.approx([score], rel=1e-9)


def test_calibrated_scores_match_known_probabilities():
    rng = np.random.default_rng(3)
    n = 60_000
    x = rng.random((n, 2)).astype(np.float32)
    truth = 0.02 + 0.3 * x[:, 0] ** 2  # the known probability of each row
    labels = rng.random(n) < truth
    ranker = propensity_model.fit_ranker(x, labels, np.arange(n) % 400, seed=0)
    fresh = rng.random((n, 2)).astype(np.float32)
    predicted = ranker.predict(fresh)
    expected = 0.02 + 0.3 * fresh[:, 0] ** 2
    table = calibration_bins(predicted, expected)  # "observed" = the true probabilities here
    ratio = table["observed"] / table["expected"]
    assert ratio.between(0.85, 1.15).all()
    # the stack's sigmoid rises: the served order is (up to averaging the folds) the families' mean log-odds'
    from scipy.stats import spearmanr
    assert ranker.stack.coef_[0, 0] > 0
    mean_odds = np.mean([propensity_model.log_odds(m.calibrated(r)).mean(axis=0)
                         for m, r in zip(ranker.members, ranker._raw(fresh))], axis=0)
    assert spearmanr(predicted, mean_odds).statistic > 0.999


def test_rare_probabilities_keep_their_ratios_through_the_calibration():
    # Three kinds of pair whose chances are 1e-4, 1e-3 and 1e-2 (ten times apart each), told apart by one
    # feature, 60K pairs each: 4, 52 and 629 positives with this seed (under 1000: a sigmoid calibration).
    # A sigmoid of the raw probability is linear in p inside exp(): it cannot make both steps (9e-4 and
    # 9e-3 apart) a factor of ten, and put the rarest kind at 11x its chance. A sigmoid of the log-odds
    # (a * log-odds + b) can keep every ratio: each kind lands within a factor of 2 of its chance.
    rng = np.random.default_rng(5)
    n = 180_000
    kind = np.repeat([0, 1, 2], n // 3)
    x = (kind + rng.random(n) * 0.5).astype(np.float32)[:, None]
    chance = np.array([1e-4, 1e-3, 1e-2])
    labels = rng.random(n) < chance[kind]
    assert [labels[kind == k].sum() for k in range(3)] == [4, 52, 629]
    ranker = propensity_model.fit_ranker(x, labels, np.arange(n) % 600, seed=0)
    ratio = ranker.predict(np.array([[0.25], [1.25], [2.25]], dtype=np.float32)) / chance
    assert ((ratio > 0.5) & (ratio < 2)).all()


def test_a_few_dozen_positives_do_not_make_the_top_scores_overstate():
    # The demo's case: ~40 engaged pairs among 40K, and features that say nothing (every pair has the
    # same chance, 0.1%). A calibration fitted on a handful of them put isotonic steps where the few
    # positives happened to fall (the top decile 2.6x the base rate with these numbers); cross-fitted
    # and sigmoid, the best-scored tenth stays near the base rate.
    rng = np.random.default_rng(0)
    n = 40_000
    x = rng.random((n, 3)).astype(np.float32)
    labels = rng.random(n) < 0.001
    ranker = propensity_model.fit_ranker(x, labels, np.arange(n) % 200, seed=0)
    predicted = ranker.predict(rng.random((n, 3)).astype(np.float32))
    base = labels.mean()
    assert labels.sum() == 41
    assert np.sort(predicted)[::-1][:n // 10].mean() < 1.5 * base
    assert 0.8 * base < predicted.mean() < 1.25 * base


def test_a_product_of_two_ties_is_ranked_from_a_few_dozen_positives():
    # The chance is proportional to x0 * x1 (like comeback x category share) and only 26 of 40K pairs
    # engage. On fresh pairs the trees alone order by the true chance with a Spearman correlation of
    # 0.64 (this seed); the logistic family reads log x0 + log x1, and the mean of the two reaches 0.96.
    from scipy.stats import spearmanr
    rng = np.random.default_rng(11)
    n = 40_000
    x = rng.random((n, 2)).astype(np.float32)
    labels = rng.random(n) < 0.004 * x[:, 0] * x[:, 1]
    assert labels.sum() == 26
    ranker = propensity_model.fit_ranker(x, labels, np.arange(n) % 200, seed=0)
    fresh = rng.random((20_000, 2)).astype(np.float32)
    assert spearmanr(ranker.predict(fresh), fresh[:, 0] * fresh[:, 1])[0] > 0.9


def test_the_linear_family_reads_each_feature_and_the_log_of_those_never_negative():
    # Column 0 is never negative: it is kept and logged, log(0 + 0.001) = -6.908 and log(0.999 + 0.001) = 0.
    # Column 1 has a -1 ("no own event"): kept as it is, not logged. Two rows: each column standardizes
    # to -1 and +1.
    x = np.array([[0.0, -1.0], [0.999, 3.0]])
    linear = propensity_model.LinearFeatures().fit(x)
    assert linear.transform(x) == pytest.approx(np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    # At serving a negative value of a logged feature counts as 0 in its log (the raw column still moves).
    serving = linear.transform(np.array([[-5.0, 3.0]]))[0]
    assert serving[2] == pytest.approx(-1.0) and serving[0] == pytest.approx((-5.0 - 0.4995) / 0.4995)
