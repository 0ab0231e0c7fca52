""""Why this user": the words behind a propensity audience entry, from the same pair features the ranker
scored (pure: signals in, sentences out)."""
from __future__ import annotations

import numpy as np

from pipeline.strategies.affinity import neighbour_ties
from pipeline.strategies.propensity_data import FEATURES, Signals, pair_features, product_info


def reasons(sig: Signals, catalogue, product_id: int, user_positions: np.ndarray) -> list[list[str]]:
    """For each user (position in sig.users), the phrases that tie them to the product, strongest first."""
    info = product_info(sig, np.array([product_id], dtype=np.int64), catalogue)
    zeros = np.zeros(len(user_positions))
    ties = neighbour_ties(sig.matrix, sig.items, np.array([product_id], dtype=np.int64)).toarray()[:, 0]
    feats = pair_features(sig, info, np.zeros(len(user_positions), np.int64), user_positions,
                          ties[user_positions], zeros)
    f = {name: feats[:, i] for i, name in enumerate(FEATURES)}
    category = sig.categories[info.code[0]] if info.code[0] >= 0 else None
    out = []
    for i in range(len(user_positions)):  # words for a page of users (<= depth), not a ranking loop
        words = []
        if f["own_weight"][i] > 0:
            verb = "bought" if f["own_bought"][i] else "showed interest in"
            words.append(f"{verb} this product {int(f['own_age_days'][i])} days ago")
        if f["neighbour"][i] > 0:
            words.append("buys what this product's buyers buy")
        if category and f["category_share"][i] > 0:
            words.append(f"{f['category_share'][i]:.0%} of their activity is in {category}")
        if f["recency_days"][i] <= 7:
            words.append(f"active {int(f['recency_days'][i])} days ago")
        words.append(f"{f['comeback'][i]:.0%} of users like them came back")
        out.append(words)
    return out
