"""Deterministic split rules: the same names always give the same lists, with no random seed.

A held-out split is made before anything is trained on a set and is never trained on:

    holdout, rest = every_nth(sorted(names), 5)     # every 5th name (index % 5 == 4)
    val, train = every_nth(rest, 10)                # every 10th of the rest
"""

from __future__ import annotations

from collections.abc import Sequence


def every_nth(names: Sequence[str], n: int) -> tuple[list[str], list[str]]:
    """``(picked, rest)``: the names at index ``i`` with ``i % n == n - 1`` and all the others.

    Order is kept in both lists; every name lands in exactly one of them. ``n`` must be >= 2
    (``n = 1`` would pick everything and leave nothing to train on).
    """
    if n < 2:
        raise ValueError(f"every_nth needs n >= 2, got {n}")
    picked = [name for i, name in enumerate(names) if i % n == n - 1]
    rest = [name for i, name in enumerate(names) if i % n != n - 1]
    return picked, rest


def holdout_val_train(names: Sequence[str], holdout_every: int = 5, val_every: int = 10) -> dict[str, list[str]]:
    """The split rule of prepared sets without a split of their own (``sfa-skin``).

    ``names`` are sorted first (plain string order, so the rule does not depend on how the
    source list is ordered); every ``holdout_every``-th goes to ``holdout``, every
    ``val_every``-th of the rest to ``val``, the others to ``train``. Returns
    ``{"train", "val", "holdout", "all"}`` lists, ``all`` sorted.
    """
    if len(set(names)) != len(names):
        raise ValueError("the name list has duplicates")
    ordered = sorted(names)
    holdout, rest = every_nth(ordered, holdout_every)
    val, train = every_nth(rest, val_every)
    return {"train": train, "val": val, "holdout": holdout, "all": ordered}
