"""The study's checkpoint: finished replications are kept and not run again."""

import pandas as pd
import pytest

from pipeline.analysis import simulation as sim


def fake_task(args):
    cfg, scenario, rep, seed = args
    row = dict.fromkeys(sim.REP_COLUMNS)
    row.update(scenario=scenario, rep=rep, seed=seed, estimator="matched_ancova",
               estimate=float(rep), seconds=0.0)  # fmt: skip
    return pd.DataFrame([row])


def test_resume_runs_only_missing_replications(tmp_path, monkeypatch):
    calls = []

    def task(args):
        calls.append(args[1:3])
        return fake_task(args)

    monkeypatch.setattr(sim, "_task", task)
    ck = tmp_path / "checkpoint.csv"
    cfg = sim.ValidateConfig(n_reps=2, workers=1, scenarios=("dip", "attrition"),
                             checkpoint=str(ck))  # fmt: skip
    first = sim.run_replications(cfg)
    # rep-major: every scenario's first replication before any second one
    assert calls == [("dip", 0), ("attrition", 0), ("dip", 1), ("attrition", 1)]
    assert len(pd.read_csv(ck)) == 4
    calls.clear()
    more = sim.run_replications(sim.ValidateConfig(n_reps=3, workers=1, scenarios=("dip", "attrition"),
                                                   checkpoint=str(ck)))  # fmt: skip
    assert calls == [("dip", 2), ("attrition", 2)]
    # ordered by scenario then replication, the first two identical to the first run's
    assert list(zip(more["scenario"], more["rep"], strict=True)) == [
        ("dip", 0), ("dip", 1), ("dip", 2), ("attrition", 0), ("attrition", 1), ("attrition", 2)
    ]  # fmt: skip
    kept = more[more["rep"] < 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        kept[["scenario", "rep", "seed", "estimate"]],
        first[["scenario", "rep", "seed", "estimate"]],
        check_dtype=False,
    )


def test_checkpoint_rows_from_another_seed_are_run_again(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sim, "_task", lambda a: calls.append(a[1:3]) or fake_task(a))
    ck = tmp_path / "checkpoint.csv"
    sim.run_replications(sim.ValidateConfig(seed=1, n_reps=1, workers=1, scenarios=("dip",),
                                            checkpoint=str(ck)))  # fmt: skip
    calls.clear()
    sim.run_replications(sim.ValidateConfig(seed=2, n_reps=1, workers=1, scenarios=("dip",),
                                            checkpoint=str(ck)))  # fmt: skip
    assert calls == [("dip", 0)]


def test_resume_with_other_settings_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "_task", fake_task)
    ck = tmp_path / "checkpoint.csv"
    base = dict(n_reps=1, workers=1, scenarios=("dip",), checkpoint=str(ck))
    sim.run_replications(sim.ValidateConfig(**base, primary_censoring="impute"))
    assert sim.settings_file(ck).exists()
    # more replications, other scenarios, other workers: the same settings
    sim.run_replications(sim.ValidateConfig(**{**base, "n_reps": 2, "workers": 1},
                                            primary_censoring="impute"))  # fmt: skip
    with pytest.raises(ValueError, match=r"checkpoint.csv.*primary_censoring: 'impute' there"):
        sim.run_replications(sim.ValidateConfig(**base, primary_censoring="weights"))
    with pytest.raises(ValueError, match="history"):
        sim.run_replications(sim.ValidateConfig(**base, primary_censoring="impute", history=True))
    sim.settings_file(ck).unlink()
    with pytest.raises(ValueError, match="no checkpoint.settings.json"):
        sim.run_replications(sim.ValidateConfig(**base, primary_censoring="impute"))
