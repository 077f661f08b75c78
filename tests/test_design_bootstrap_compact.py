"""The design bootstrap's compact designs equal the dense designs they replace.

The propensity design (numeric columns dense, dummies as level codes) and the censoring
hazard's design (rates and level codes, each draw's rows built sparse) are checked against
the dense matrices the bootstrap used to hold, written out here as they were built
(standardised design matrix; the hazard's columns one by one), and a bootstrap run on the
dense matrices gives the same draws to 1e-10.
"""

import numpy as np
import pandas as pd
import pytest

from pipeline.design_bootstrap import LAGS, DesignBootstrap, HazardDesign, PropensityDesign
from pipeline.matching.propensity import _non_aliased, design_matrix
from pipeline.matching.riskset import RiskSetSpec, riskset_work
from tests.conftest import small_config
from tests.panel_factory import build_panel


@pytest.fixture(scope="module")
def panel():
    return build_panel(small_config())[0].reset_index(drop=True)


def dense_propensity_design(p: pd.DataFrame) -> np.ndarray:
    """``[1, (A - mu) / sd]`` of the non-aliased columns of the matching design matrix."""
    rs = riskset_work(p, RiskSetSpec())
    A = design_matrix(rs.work, rs.covs_ps, levels=rs.levels).to_numpy()
    mu, sd = A.mean(axis=0), A.std(axis=0)
    keep = _non_aliased(A, mu, sd)
    return np.column_stack([np.ones(len(A)), (A[:, keep] - mu[keep]) / sd[keep]])


def dense_hazard_design(p: pd.DataFrame, sel: np.ndarray) -> np.ndarray:
    """The hazard's design of rows ``sel``, column by column (dummies of the levels, coded
    over the whole panel, that occur among those rows)."""
    cols = [np.ones(int(sel.sum()))]
    for h in (*LAGS, "prior_year_rate"):
        x = p[h].astype("float64").to_numpy()[sel]
        miss = np.isnan(x)
        x = np.where(miss, 0.0, (x - 90.0) / 10.0)
        cols += [x, x**2, miss.astype(float)]
    for c in ("month", "district_code", "grade_band"):
        codes, _ = pd.factorize(p[c].astype(str), sort=True)
        sub = codes[sel]
        cols += [(sub == lev).astype(float) for lev in np.unique(sub[sub > 0])]
    return np.column_stack(cols)


class DenseZ:
    """The propensity design as one dense matrix, with PropensityDesign's interface."""

    def __init__(self, Z):
        self.Z = Z

    def lp(self, beta):
        return self.Z @ beta

    def zt(self, v):
        return self.Z.T @ v

    def rows(self, idx):
        return self.Z[idx]

    def weighted_gram(self, w):
        return (self.Z * w[:, None]).T @ self.Z


class DenseHazard:
    def __init__(self, H):
        self.H = H

    def rows(self, r):
        return self.H[r]


def test_propensity_design_products_equal_the_dense_ones(panel):
    Zd = dense_propensity_design(panel)
    rs = riskset_work(panel, RiskSetSpec())
    A = design_matrix(rs.work, rs.covs_ps, levels=rs.levels).to_numpy()
    ps = PropensityDesign(A, rs.work, rs.covs_ps, rs.levels)
    ps.BLOCK = 997  # several blocks, the last one short
    assert ps.k == Zd.shape[1]
    assert ps.cats and ps.num.shape[1] < ps.k - 1  # dummies are held as codes
    np.testing.assert_array_equal(ps.rows(np.arange(len(Zd))), Zd)
    rng = np.random.default_rng(1)
    beta, v = rng.normal(size=ps.k), rng.normal(size=len(Zd))
    np.testing.assert_allclose(ps.lp(beta), Zd @ beta, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ps.zt(v), Zd.T @ v, rtol=1e-12, atol=1e-10)
    w = rng.uniform(size=len(Zd))
    G = (Zd * w[:, None]).T @ Zd
    np.testing.assert_allclose(ps.weighted_gram(w), G, rtol=1e-12, atol=1e-10)


def test_hazard_design_rows_equal_the_dense_design(panel):
    rng = np.random.default_rng(2)
    sel = rng.uniform(size=len(panel)) < 0.4
    hz = HazardDesign(panel, sel)
    H = dense_hazard_design(panel, sel)
    assert hz.k == H.shape[1]
    r = rng.choice(int(sel.sum()), size=500)
    np.testing.assert_array_equal(hz.rows(r).toarray(), H[r])


@pytest.mark.parametrize("newton_steps", [0, 2])
def test_draws_equal_those_on_the_dense_designs(panel, newton_steps):
    compact = DesignBootstrap(panel, newton_steps=newton_steps)
    dense = DesignBootstrap(panel, newton_steps=newton_steps)
    dense.ps = DenseZ(dense_propensity_design(panel))
    # the score step's residuals and inverse Hessian from the dense design, as before
    p0 = 0.5 * (1.0 + np.tanh(0.5 * dense.ps.lp(dense.beta0)))
    dense.resid0 = dense.work_t - p0
    H0 = dense.ps.weighted_gram(p0 * (1 - p0))
    H0[np.diag_indices_from(H0)] += 1e-9 * np.trace(H0) / H0.shape[0]
    dense.H0inv = np.linalg.inv(H0)
    dense.hazard = DenseHazard(dense_hazard_design(panel, dense.h_row >= 0))
    a = compact.run(4, seed=7, workers=1)
    b = dense.run(4, seed=7, workers=1)
    assert np.isfinite(a.draws).all() and a.draws.std() > 0
    assert a.estimate == pytest.approx(b.estimate, abs=1e-10)
    np.testing.assert_allclose(a.draws, b.draws, rtol=0, atol=1e-10)
