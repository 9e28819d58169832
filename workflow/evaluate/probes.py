"""Linear and nearest-neighbour probes of embeddings, on scikit-learn.

- ``knn_predict`` / ``knn_loo_accuracy``: k-NN under cosine distance, majority vote with ties
  going to the class of the nearer neighbour (the vote weights below), train/query or
  leave-one-out.
- ``nested_ridge_r2``: cross-validated R^2 of a ridge regression whose strength is chosen
  inside each training split (nested cross-validation), so the reported folds never took part
  in choosing it and the score is not the optimistic best-of-grid.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsClassifier

K = 5
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
FOLDS = 5


def nearer_first(distances: np.ndarray) -> np.ndarray:
    """Vote weights: one per neighbour plus a bonus 1e-3 * 2^-rank. The bonuses add up to less
    than one vote, so counts decide; between tied classes, the one holding the nearest
    neighbour wins, since 2^-r exceeds the sum of all later bonuses."""
    ranks = np.arange(distances.shape[1])
    return np.tile(1.0 + 1e-3 * 0.5 ** ranks, (distances.shape[0], 1))


def knn_classifier(k: int = K) -> KNeighborsClassifier:
    return KNeighborsClassifier(n_neighbors=k, metric="cosine", weights=nearer_first,
                                algorithm="brute")


def knn_predict(train: np.ndarray, train_labels: list, query: np.ndarray, k: int = K) -> list:
    """The k-NN label of each query row, neighbours among the training rows."""
    if len(query) == 0:
        return []
    model = knn_classifier(min(k, len(train))).fit(np.asarray(train), np.asarray(train_labels))
    return model.predict(np.asarray(query)).tolist()


def knn_loo_accuracy(x: np.ndarray, labels: list, k: int = K) -> float:
    """Leave-one-out k-NN accuracy: each row classified by the others (``predict(None)``
    leaves every indexed row out of its own neighbours)."""
    labels = np.asarray(labels)
    model = knn_classifier(k).fit(np.asarray(x), labels)
    return float(np.mean(model.predict(None) == labels))


def nested_ridge_r2(x: np.ndarray, y: np.ndarray, alphas=RIDGE_ALPHAS, folds: int = FOLDS,
                    seed: int = 0) -> tuple[float, list[float]]:
    """(R^2 of the out-of-fold predictions, averaged over target dimensions; the strength
    chosen in each outer fold). Each outer training split picks its strength by RidgeCV's
    efficient leave-one-out over ``alphas``; the held-out fold only scores."""
    outer = KFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = np.zeros_like(y, dtype=float)
    chosen = []
    for train, test in outer.split(x):
        model = RidgeCV(alphas=alphas).fit(x[train], y[train])
        pred[test] = model.predict(x[test])
        chosen.append(float(model.alpha_))
    return float(r2_score(y, pred, multioutput="uniform_average")), chosen
