"""Online estimators for the quoting maths: EWMA volatility of the mid and the arrival decay κ.

Theory of operation
-------------------
**Volatility.** The mid moves in jumps at irregular times. Each observation contributes the
variance rate ``Δmid²/Δt`` (dollars² per second), averaged with a weight that decays with
elapsed *time*: ``v ← λ·v + (1 − λ)·Δmid²/Δt`` with ``λ = exp(−Δt·ln 2 / halflife)``. For
short gaps ``1 − λ ≈ Δt·ln 2/halflife``, so ``v`` is the realised variance of the last few
half-lives divided by their length, whatever the sampling. The running average starts at 0,
so it is divided by the total weight ``w ← λ·w + (1 − λ)`` (the usual bias correction);
``σ = √(v/w)``. Until ``min_samples`` moves have been seen, :meth:`EwmaVolatility.sigma`
returns the configured default.

**Arrival decay κ.** Avellaneda–Stoikov assume the rate of fills at distance ``d`` from the
mid is ``A·e^(−κd)``. The distances of trades from the mid are then exponential with rate
``κ``, whose maximum-likelihood estimate is ``1 / mean(d)``. :class:`KappaEstimator` keeps an
EWMA of ``d`` over trades (half-life counted in trades), adds half a tick to every distance
so that a trade at the mid cannot make ``κ`` infinite, clamps the result to
``[kappa_min, kappa_max]``, and returns the configured default until ``min_trades`` trades
have been seen, so that a thin market is still quoted.

Floats here are dollars (mids, distances, ticks); integers are :data:`~kmm.types.Price`.
"""

from __future__ import annotations

import math

from kmm.errors import ConfigError
from kmm.types import ONE_DOLLAR, Price

__all__ = ["EwmaVolatility", "KappaEstimator"]

_LN2 = math.log(2.0)
_NS_PER_S = 1_000_000_000


class EwmaVolatility:
    """An exponentially weighted estimate of the mid's volatility per √second.

    Args:
        halflife_s: Half-life of the weights, in seconds of elapsed time.
        sigma_default: The value returned until enough moves have been seen, in dollars/√s.
        min_samples: Number of updates with ``Δt > 0`` needed before the estimate is used.

    Raises:
        ConfigError: if the half-life is not positive, the default is negative, or
            ``min_samples`` is negative.
    """

    __slots__ = (
        "_halflife_s",
        "_last_mid",
        "_last_ns",
        "_min_samples",
        "_samples",
        "_sigma_default",
        "_var",
        "_weight",
    )

    def __init__(self, halflife_s: float, sigma_default: float, min_samples: int) -> None:
        problems = []
        if not halflife_s > 0:
            problems.append(f"halflife_s: must be positive, got {halflife_s}")
        if not sigma_default >= 0:
            problems.append(f"sigma_default: must not be negative, got {sigma_default}")
        if min_samples < 0:
            problems.append(f"min_samples: must not be negative, got {min_samples}")
        if problems:
            raise ConfigError(problems)
        self._halflife_s = halflife_s
        self._sigma_default = sigma_default
        self._samples = 0
        self._min_samples = min_samples
        self._var = 0.0
        self._weight = 0.0
        self._last_mid: float | None = None
        self._last_ns = 0

    def update(self, mid: float, t_ns: int) -> None:
        """Adds one observation of the mid.

        Args:
            mid: The mid in dollars of YES.
            t_ns: When it was observed, in nanoseconds (any epoch, but monotonic across
                calls). An observation no later than the previous one is ignored, so the
                move it carries is counted at the next later observation. A non-finite mid
                (no book) is ignored.
        """
        if not math.isfinite(mid):
            return
        last_mid = self._last_mid
        if last_mid is None:
            self._last_mid = mid
            self._last_ns = t_ns
            return
        dt_s = (t_ns - self._last_ns) / _NS_PER_S
        if dt_s <= 0.0:
            return
        decay = math.exp(-dt_s * _LN2 / self._halflife_s)
        move = mid - last_mid
        self._var = decay * self._var + (1.0 - decay) * (move * move / dt_s)
        self._weight = decay * self._weight + (1.0 - decay)
        self._last_mid = mid
        self._last_ns = t_ns
        self._samples += 1

    def sigma(self) -> float:
        """Returns σ in dollars per √second, or the default while data is thin."""
        if self._samples < self._min_samples or self._weight <= 0.0:
            return self._sigma_default
        return math.sqrt(self._var / self._weight)

    @property
    def samples(self) -> int:
        """The number of updates that contributed a move."""
        return self._samples


class KappaEstimator:
    """An estimate of the arrival decay κ from public trades' distances to the mid.

    Args:
        halflife_trades: Half-life of the EWMA of distances, in trades.
        kappa_default: The value returned until ``min_trades`` trades, in 1/dollar.
        kappa_min: The smallest κ returned once estimated, in 1/dollar.
        kappa_max: The largest κ returned once estimated, in 1/dollar.
        min_trades: Number of trades needed before the estimate is used.
        half_tick: Added to every distance, in dollars (half of a 1¢ tick by default).

    Raises:
        ConfigError: if a parameter is out of range (non-positive half-life or κ bounds,
            ``kappa_min > kappa_max``, negative ``min_trades`` or ``half_tick``).
    """

    __slots__ = (
        "_alpha",
        "_half_tick",
        "_kappa_default",
        "_kappa_max",
        "_kappa_min",
        "_mean",
        "_min_trades",
        "_trades",
        "_weight",
    )

    def __init__(
        self,
        halflife_trades: float,
        kappa_default: float,
        kappa_min: float,
        kappa_max: float,
        min_trades: int,
        half_tick: float = 0.005,
    ) -> None:
        _check_kappa_params(
            halflife_trades, kappa_default, kappa_min, kappa_max, min_trades, half_tick
        )
        self._alpha = 1.0 - math.exp(-_LN2 / halflife_trades)
        self._kappa_default = kappa_default
        self._kappa_min = kappa_min
        self._kappa_max = kappa_max
        self._min_trades = min_trades
        self._half_tick = half_tick
        self._mean = 0.0
        self._weight = 0.0
        self._trades = 0

    def update(self, trade_price: Price, mid: float) -> None:
        """Adds one public trade.

        Args:
            trade_price: The trade's YES price in $0.0001 units.
            mid: The mid just before the trade, in dollars of YES. A non-finite mid (no
                book) is ignored.
        """
        if not math.isfinite(mid):
            return
        distance = abs(trade_price / ONE_DOLLAR - mid) + self._half_tick
        alpha = self._alpha
        self._mean += alpha * (distance - self._mean)
        self._weight += alpha * (1.0 - self._weight)
        self._trades += 1

    def kappa(self) -> float:
        """Returns κ in 1/dollar, clamped, or the default while trades are few."""
        if self._trades < self._min_trades:
            return self._kappa_default
        if self._mean <= 0.0:
            return self._kappa_max
        kappa = self._weight / self._mean
        if kappa < self._kappa_min:
            return self._kappa_min
        return kappa if kappa < self._kappa_max else self._kappa_max

    @property
    def trades(self) -> int:
        """The number of trades seen."""
        return self._trades


def _check_kappa_params(
    halflife_trades: float,
    kappa_default: float,
    kappa_min: float,
    kappa_max: float,
    min_trades: int,
    half_tick: float,
) -> None:
    problems = [
        f"{name}: must be positive, got {value}"
        for name, value in (
            ("halflife_trades", halflife_trades),
            ("kappa_default", kappa_default),
            ("kappa_min", kappa_min),
        )
        if not value > 0
    ]
    if not kappa_min <= kappa_max:
        problems.append(f"kappa_max: must be at least kappa_min ({kappa_min}), got {kappa_max}")
    if min_trades < 0:
        problems.append(f"min_trades: must not be negative, got {min_trades}")
    if not half_tick >= 0:
        problems.append(f"half_tick: must not be negative, got {half_tick}")
    if problems:
        raise ConfigError(problems)
