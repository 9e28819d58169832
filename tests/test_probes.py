"""The scikit-learn probes: same k-NN answers as the hand-written vote they replaced, ties to
the nearer neighbour, and a ridge strength never chosen on the fold it is scored on."""
from __future__ import annotations

from collections import Counter

import numpy as np

from workflow.evaluate import probes


def vote_by_hand(sim: np.ndarray, labels: list, k: int) -> list:
    """The former implementation: top-k by cosine similarity, majority, ties to the nearest."""
    out = []
    for row in np.argsort(-sim, axis=1)[:, :k]:
        labs = [labels[j] for j in row]
        counts = Counter(labs)
        out.append(next(lab for lab in labs if counts[lab] == max(counts.values())))
    return out


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(seed: int, n: int = 150, classes: int = 12, dim: int = 16):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n).tolist()
    centres = rng.normal(size=(classes, dim))
    return centres[labels] + 1.5 * rng.normal(size=(n, dim)), labels  # overlapping: many ties


def test_knn_predict_matches_the_hand_written_vote():
    x, labels = clustered(0)
    train, query = x[:100], x[100:]
    expected = vote_by_hand(unit(query) @ unit(train).T, labels[:100], 5)
    assert probes.knn_predict(train, labels[:100], query) == expected


def test_leave_one_out_matches_the_hand_written_vote():
    x, labels = clustered(1)
    sim = unit(x) @ unit(x).T
    np.fill_diagonal(sim, -np.inf)
    expected = np.mean(np.array(vote_by_hand(sim, labels, 5)) == np.array(labels))
    assert probes.knn_loo_accuracy(x, labels) == expected


def test_a_tied_vote_goes_to_the_class_of_the_nearest_neighbour():
    angles = np.array([0.10, 0.20, 0.30, 0.40, 0.50])  # neighbours of the query, nearest first
    train = np.stack([np.cos(angles), np.sin(angles)], 1)
    query = np.array([[1.0, 0.0]])
    assert probes.knn_predict(train, ["b", "a", "a", "b", "c"], query) == ["b"]  # 2-2-1: b nearest
    assert probes.knn_predict(train, ["c", "a", "a", "b", "b"], query) == ["a"]  # a, b tie; a nearer
    assert probes.knn_predict(train, ["c", "a", "b", "b", "b"], query) == ["b"]  # counts decide


def test_ridge_strength_is_chosen_without_the_scored_fold():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 20))
    y = x[:, :3] + 0.5 * rng.normal(size=(120, 3))
    r2, chosen = probes.nested_ridge_r2(x, y, seed=0)
    assert 0.5 < r2 < 1 and len(chosen) == probes.FOLDS
    # Scramble the targets of the first outer fold's held-out rows: the strength that fold
    # uses cannot change, as it was chosen on the other rows alone.
    from sklearn.model_selection import KFold

    _, test = next(KFold(probes.FOLDS, shuffle=True, random_state=0).split(x))
    scrambled = y.copy()
    scrambled[test] = 100 * rng.normal(size=(len(test), 3))
    assert probes.nested_ridge_r2(x, scrambled, seed=0)[1][0] == chosen[0]


def test_nested_score_is_not_the_optimistic_best_of_grid():
    """On pure noise the best-of-grid score picks whichever strength fits the folds' noise;
    the nested one stays at or below it."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 30)), rng.normal(size=(60, 2))
    folds = KFold(probes.FOLDS, shuffle=True, random_state=0)
    best = max(r2_score(y, cross_val_predict(Ridge(alpha=a), x, y, cv=folds))
               for a in probes.RIDGE_ALPHAS)
    nested, _ = probes.nested_ridge_r2(x, y, seed=0)
    assert nested <= best + 1e-12 and nested < 0.05
