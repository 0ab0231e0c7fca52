"""Words meant for analysts, shown by the app's pages and the HTML report: what each metric means and
what each strategy does. The pipeline computes the numbers; these say what they are."""
from __future__ import annotations

# The evaluation metrics (pipeline/evaluation/metrics.py) in plain words, in the order tables show them.
EXPLANATIONS = {
    "recall_micro": "Of all the product-user engagements that really happened after the split, the share "
                    "that was in that product's top k. The headline: a run without --strategy publishes the "
                    "strategy with the best recall@100.",
    "recall_macro": "The same share computed product by product and then averaged, so a niche product "
                    "counts as much as a bestseller.",
    "precision_macro": "Of the k users in an audience, the share who really came for the product, "
                       "averaged over products.",
    "precision_micro": "All hits divided by all audience places filled.",
    "hit_rate": "The share of products whose top k holds at least one user who really came.",
    "ndcg": "Like recall, but a hit near the top counts more than one near the bottom (1 = every real "
            "user ranked first).",
    "reachable_ceiling": "The best recall any ranking of known users could reach: engagements by users "
                         "already seen before the split and allowed by the exclusion rule (at most k per "
                         "product). Newcomers cannot be targeted by anyone.",
    "user_coverage": "The share of candidate users who are in at least one top k. Low coverage means the "
                     "same few users are sent everything.",
    "exposure_gini": "How concentrated the audiences are on a few users: 0 = everyone in equally many "
                     "audiences, close to 1 = a handful of users in nearly all of them.",
    "lift_over_random": "recall_micro divided by what audiences drawn at random from the allowed users get "
                        "on average: 10 means ten times better than chance, 1 no better.",
}
# Column titles short enough for a leaderboard of every metric to fit the page; the full name and the
# explanation above go in each column's help.
SHORT_NAMES = {
    "recall_micro": "recall", "recall_macro": "recall/product", "precision_macro": "precision/product",
    "precision_micro": "precision", "hit_rate": "hit rate", "ndcg": "nDCG", "reachable_ceiling": "ceiling",
    "user_coverage": "coverage", "exposure_gini": "Gini", "lift_over_random": "lift ×",
}

# The strategies (pipeline/strategies/) in plain words.
DESCRIPTIONS: dict[str, str] = {
    "engagement": (
        "Engagement ranks every user by one score built from five signals: how many interactions they "
        "had (35%), how many different products (25%), how strong their events were on average "
        "(purchase 5, cart 3, rating 2.5, wishlist 2, search 1; 20%), how often they came back per active "
        "day (15%) and how recently they were seen (5%, fading over 90 days). Each product's audience is "
        "that list minus the users the exclusion rule leaves out, so it favours loyal, active customers "
        "but is the same for every product apart from the exclusions."),
    "affinity": (
        "Affinity looks for users who are likely to come back and who care about this product. Who comes "
        "back is learned from the data itself: the run splits its own past once more and measures how "
        "often users of each kind (how many interactions, on one day or on several) returned. What they "
        "care about comes from three signals: the products this product is bought and carted together "
        "with (users who touched its nearest neighbours), the user's own earlier cart or wishlist of this "
        "product without a purchase (only when the exclusion rule lets such users in, e.g. --exclude "
        "purchased), and the share of the user's activity in the product's category when a product "
        "catalogue is given. A user's score is their chance of coming back times how strongly these "
        "signals tie them to the product; users with no tie at all follow in engagement order, so every "
        "audience is full."),
    "propensity": (
        "Propensity is a learned model in two stages, as production recommenders work. First it gathers "
        "candidates for each product from every source: users who carted or wishlisted it without buying "
        "(when the exclusion rule lets them in), users who buy what this product's buyers buy (item "
        "neighbours), users whose taste matches it (ALS), users loyal to its category (with a catalogue) "
        "and active users likely to come back. Then two classifiers, gradient-boosted trees and a logistic "
        "regression, trained on the run's own past (features before an inner cut, what happened after "
        "it), score each candidate from their chance of coming back (learned on every user from activity "
        "and recency; the activity itself too once there are a thousand engagements to learn from), own "
        "interest in the product, category share, neighbour strength, taste match, affinity's score and "
        "the product's popularity and age (which raise or lower all of a product's candidates alike). "
        "The two are combined and calibrated once more on scores neither model saw in training; the "
        "score is a calibrated probability that the user "
        "engages with the product within the horizon (the length of the holdout window): an audience's "
        "scores add up to the engagements it can be expected to bring."),
    "als": (
        "ALS is implicit's alternating least squares, the standard collaborative filter: it compresses the "
        "whole interaction history (every event with its weight, fading with age) into a few hidden "
        "'taste' dimensions for users and products. A user's score for a product is how well the two "
        "taste vectors match. Users it cannot score follow in engagement order. It is here as the "
        "library most teams would reach for first."),
    "itemknn": (
        "Item-kNN is implicit's BM25 item-item nearest neighbours: products are similar when the same "
        "users touched both. A user's score for a product is the similarity-weighted sum of what they "
        "touched among the product's 100 nearest neighbours: 'buys what this product's buyers buy'. "
        "Users with no tie follow in engagement order."),
    "activity": (
        "Activity is the ranking the earlier prototype served: interactions in the last 30 days divided "
        "by (days since the user was last seen + 1). It rewards bursts of recent activity and ignores "
        "what the product is, so every audience is the same list apart from the exclusions."),
    "random": (
        "Random draws each product's audience uniformly from the users the exclusion rule allows "
        "(reproducible from the run's seed). It is the floor: a strategy that does not beat it clearly "
        "has learned nothing. Its scores are all 0."),
}


def strategy_title(is_current: bool) -> str:
    """What a run's strategy is called: only the run being served has *the published* strategy."""
    return "Published strategy" if is_current else "This run's strategy"


CERTAINTY_TEXT = (
    "How sure is the ranking? Had other products and users been evaluated, every recall would have come out "
    "a little different. The ± columns are the half-widths of 95% intervals, with products and users both "
    "as sampling units (one returning user can be a hit in many audiences at once): a strategy's own, and "
    "that of its difference to the run's strategy. The difference is measured on the same later "
    "engagements, so it is far surer than the two recalls' own intervals suggest. 'within noise': the "
    "interval of the difference holds zero, so this holdout cannot tell the two apart. The intervals are "
    "approximate (a normal approximation): with a few dozen hits, read them as somewhat narrow.")
NO_CERTAINTY = ("This run stored no standard errors (it has no holdout, or it is from before they were kept): "
                "rerun to see how sure each difference is.")


# --- The propensity model: calibration, gain, "why this user", category audiences ---------------------

CALIBRATION_TEXT = (
    "The propensity score is meant as a probability: the chance that the user engages with the product "
    "within the horizon. On the holdout, every audience entry of the propensity model is put in one of ten "
    "equal groups by score (decile 1 = the highest scores); in each, the expected engagements (the sum of "
    "the scores) should match the engagements that really happened. Bars of equal height mean an "
    "audience's scores can be added up to forecast what it brings. The whiskers (and the chance range "
    "columns) show how far a perfectly calibrated model's count strays 19 times in 20 by chance alone: "
    "with a few dozen engagements per decile a bar can sit well off its expected height and still be "
    "chance; outside the whiskers it is not.")
LEARNED_FROM = (
    "The propensity model scored here was trained on {pairs:,} candidate pairs of its fitting period "
    "(features before an inner cut, engagements after it; the pairs that did not engage are a reweighted "
    "sample), {engaged:,} of which engaged.")
FEW_ENGAGED_PAIRS = 200  # below this, say the model had little to learn from
NOTHING_LEARNED = (
    "The propensity model scored here had {engaged:,} engaged pairs to learn from in its fitting period "
    "({pairs:,} candidate pairs), too few to fit: it ranked by its prior, each user's chance of coming back "
    "(up to doubled by the user's tie to the product, as affinity weighs it).")
FEW_ENGAGED = (" That is few: with a few dozen engaged pairs a learned model is noisy and a hand-set rule such "
               "as affinity can rank better; a longer history gives it more to learn from.")


def learned_from_words(stats: dict) -> str:
    """How much the propensity model scored on the holdout had to learn from, from the run's stats ("" for
    a run that does not record it)."""
    if "propensity_model_families" not in stats:
        return ""
    engaged, pairs = int(stats["propensity_training_engaged_pairs"]), int(stats["propensity_training_pairs"])
    if not stats["propensity_model_families"]:
        return NOTHING_LEARNED.format(engaged=engaged, pairs=pairs)
    return LEARNED_FROM.format(engaged=engaged, pairs=pairs) + (FEW_ENGAGED if engaged < FEW_ENGAGED_PAIRS else "")


NO_CALIBRATION = (
    "This run stored no calibration: it has no holdout (`--holdout 0`), the propensity model was not "
    "evaluated, or the run predates calibration. Rerun with the default holdout to see it.")
GAIN_TEXT = (
    "Gain: of the later engagements that the full audience caught on the holdout, the share already caught "
    "by its top N. A steep start means a short list captures most of what the long one would.")
NO_GAIN = ("This run stored no gain curve (no holdout, or a run from before gain curves were kept): "
           "rerun with a holdout to see how many users reach 50 / 70 / 90% of what a list captures.")
EXPECTED_TEXT = (
    "Propensity scores are probabilities, so their sum is the number of engagements this audience can be "
    "expected to bring within the horizon; the curve shows how fast the top N accumulates them.")
NOT_PROBABILITIES = ("This run's strategy ({strategy}) scores are not probabilities, so they do not add up "
                     "to expected engagements; the users for 50 / 70 / 90% are read from its gain measured on "
                     "the holdout.")
GAIN_SHARES = (0.5, 0.7, 0.9)

# Candidate sources of the propensity model (store/reasons.py bits), in words.
SOURCE_WORDS = {1: "own interest", 2: "neighbours", 4: "taste", 8: "category", 16: "likely to return"}
SOURCE_HELP = ("What brought the user into the candidates: own interest (they touched this product), "
               "neighbours (they touched products bought with it), taste (ALS factors match), category "
               "(their activity is in its category), likely to return (active users who tend to come back).")
OWN_VERBS = {"purchased": "bought", "cart": "carted", "rating": "rated", "wishlist": "wishlisted",
             "search_keyword": "searched for", "other": "interacted with"}
NO_REASONS = ("This run does not record why each user is in an audience (its strategy is {strategy}): only "
              "propensity runs store their candidate sources, from this version on. The score is still its score.")
NO_REASONS_CATEGORY = "Reasons are stored for product audiences; a category's audience lists users only."
NO_CATEGORIES = ("This run has no category audiences: it was run without a product catalogue "
                 "(`--products FILE` with product_id, category).")


def _days(days: int) -> str:
    return "today" if days == 0 else "1 day ago" if days == 1 else f"{days} days ago"


def sources_text(bits: int) -> str:
    """The candidate sources of one entry, e.g. 'own interest + neighbours'."""
    return " + ".join(word for bit, word in SOURCE_WORDS.items() if bits & bit)


def why_phrases(record, category: str | None, recency_days: float | None) -> list[str]:
    """One audience entry's strongest reasons, in words, strongest first (record: store/reasons.RECORD;
    category: the product's; recency_days: the user's days since last seen)."""
    from store.reasons import OWN_EVENTS
    words = []
    own_event = OWN_EVENTS[int(record["own"])] if int(record["own"]) < len(OWN_EVENTS) else ""
    if own_event:
        words.append(f"{OWN_VERBS.get(own_event, 'interacted with')} this product {_days(int(record['own_age']))}")
    if record["sources"] & 2:
        words.append("buys what this product's buyers buy")
    if record["sources"] & 4:
        words.append("their taste matches this product's buyers'")
    if category and record["share"] > 0:
        words.append(f"{int(record['share'])}% of their activity is in {category}")
    if recency_days is not None and recency_days == recency_days and recency_days <= 7:
        words.append(f"active {_days(int(recency_days))}")
    if record["sources"] & 16 or not words:
        words.append(f"{int(record['comeback'])}% of users like them came back")
    return words
