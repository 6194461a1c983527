"""Tests of the Python module: the same numbers as the command line on the
same data and seeds, file round trips between Python and the CLI, bad input,
and Ctrl-C. Run by `meson test` (suite "python") with PYTHONPATH=build/python
and MOERATE_CLI set to the moerate program; from the source root by hand:
    PYTHONPATH=build/python MOERATE_CLI=build/apps/moerate /usr/bin/python3 -m pytest python/tests
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import moerate

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("MOERATE_CLI", os.path.join(ROOT, "build", "apps", "moerate"))
TRUTH = os.path.join(ROOT, "data", "experiment-a.json")


def cli(*args, ok=True):
    """Run the moerate program; returns (stdout, stderr)."""
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    if ok and p.returncode != 0:
        raise AssertionError(f"moerate {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    if not ok:
        assert p.returncode != 0, f"moerate {args} should fail"
    return p.stdout, p.stderr


def cli_error(*args):
    """The message the CLI prints after 'moerate CMD: error: '."""
    _, err = cli(*args, ok=False)
    line = err.strip().splitlines()[0]
    prefix = f"moerate {args[0]}: error: "
    assert line.startswith(prefix), line
    return line[len(prefix):]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """n = 600 from experiment A drawn by the CLI (seed 3)."""
    d = tmp_path_factory.mktemp("data")
    path = d / "a.csv"
    cli("simulate", "--model", TRUTH, "--n", 600, "--seed", 3, "--out", path)
    X, y = moerate.read_csv(path)
    return path, X, y


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """The same fit through the CLI and through Python (k = 2, 4 starts, seed 5)."""
    path, X, y = data
    out = tmp_path_factory.mktemp("fit") / "fit.json"
    cli("fit", "--data", path, "--experts", 2, "--starts", 4, "--seed", 5, "--out", out, "--quiet")
    r = moerate.fit(X, y, experts=2, starts=4, seed=5)
    return out, json.load(open(out)), r


def test_import_and_version():
    out, _ = cli("--version")
    assert out.strip() == "moerate " + moerate.__version__


def test_families_equal_cli():
    out, _ = cli("list")
    fam = moerate.families()
    assert set(fam) == {"gating", "expert", "estimator"}
    for group in fam.values():
        for name, description in group.items():
            assert any(line.split()[0] == name and line.rstrip().endswith(description) for line in out.splitlines()
                       if line.startswith("  ")), name
    assert {"em", "mle", "lse"} <= set(fam["estimator"]) and "softmax" in fam["gating"]


def test_simulate_equals_cli(data):
    _, X, y = data
    X2, y2 = moerate.simulate(moerate.Model.load(TRUTH), 600, seed=3)
    assert X2.shape == (600, 1) and y2.shape == (600,)
    # The CSV holds 17 significant digits: the numbers are identical.
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    # numpy reads the same file to the same doubles
    raw = np.loadtxt(data[0], delimiter=",", skiprows=1)
    assert np.array_equal(raw[:, 0], X[:, 0]) and np.array_equal(raw[:, 1], y)


def test_fit_equals_cli(fitted):
    _, j, r = fitted
    assert r.log_likelihood == j["log_likelihood"]
    assert r.stop_reason == j["stop_reason"] == "converged"
    assert r.iterations == j["iterations"]
    assert r.model.to_json()["experts"] == j["experts"]
    mine = r.to_json()
    for key in ("log_likelihood", "aic", "bic", "iterations", "stop_reason", "n_obs"):
        assert mine[key] == j[key], key
    for key in ("estimator", "n_params", "rss", "best_start", "variance_floor", "floored_variances",
                "max_loglik_decrease", "seed", "init", "max_iter", "tol", "ridge"):
        assert mine["fit"][key] == j["fit"][key], key
    strip = lambda starts: [{k: v for k, v in s.items() if k != "seconds"} for s in starts]
    assert strip(mine["fit"]["starts"]) == strip(j["fit"]["starts"])


def test_fit_result_exposes_the_json(fitted):
    _, j, r = fitted
    # every key of the fit JSON is an item and an attribute (new keys flow through)
    assert set(j["fit"]) - set(r.to_json()["fit"]) == {"data"}  # the CLI's data file name
    for key in r.to_json()["fit"]:
        assert key in r.keys()
        assert r[key] == r.to_json()["fit"][key] or key == "seconds"
        assert getattr(r, key) == r[key] or key == "seconds"
    assert r.info["n_params"] == j["fit"]["n_params"]
    assert r.trace.shape == (r.iterations + 1,)
    assert np.all(np.diff(r.trace) > -1e-8)
    assert r.standard_errors is None
    with pytest.raises(AttributeError):
        r.no_such_field
    assert "log-likelihood" in repr(r)


def test_fit_threads_do_not_matter(data, fitted):
    _, X, y = data
    r1 = moerate.fit(X, y, experts=2, starts=4, seed=5, threads=1)
    r2 = moerate.fit(X, y, experts=2, starts=4, seed=5, threads=2)
    assert r1.log_likelihood == r2.log_likelihood == fitted[2].log_likelihood
    assert r1.model.to_json() == r2.model.to_json()


@pytest.mark.parametrize("estimator", ["mle", "lse"])
def test_other_estimators_equal_cli(data, tmp_path, estimator):
    path, X, y = data
    out = tmp_path / "f.json"
    cli("fit", "--data", path, "--experts", 2, "--starts", 2, "--seed", 2, "--estimator", estimator,
        "--max-iter", 200, "--out", out, "--quiet")
    j = json.load(open(out))
    r = moerate.fit(X, y, experts=2, starts=2, seed=2, estimator=estimator, max_iter=200)
    assert r.log_likelihood == j["log_likelihood"]
    assert r.model.to_json() == moerate.Model.load(out).to_json()


def test_standard_errors_equal_cli(data, tmp_path):
    path, X, y = data
    out = tmp_path / "se.json"
    cli("fit", "--data", path, "--experts", 2, "--starts", 2, "--seed", 1, "--se", "--out", out, "--quiet")
    j = json.load(open(out))
    r = moerate.fit(X, y, experts=2, starts=2, seed=1, se=True)
    assert r.standard_errors == j["standard_errors"]
    assert moerate.standard_errors(r.model, X, y) == j["standard_errors"]


def test_loglik_equals_cli(data, fitted):
    path, X, y = data
    out, j, r = fitted
    s, _ = cli("loglik", "--model", out, "--data", path, "--json")
    lj = json.loads(s)
    m = moerate.Model.load(out)
    assert m.loglik(X, y) == lj["log_likelihood"] == r.log_likelihood
    assert m.mse(X, y) == lj["mse"]


def test_predict_equals_cli(data, fitted, tmp_path):
    path, X, y = data
    out = fitted[0]
    pred = tmp_path / "p.csv"
    cli("predict", "--model", out, "--data", path, "--quantiles", "0.1,0.5,0.9", "--out", pred)
    t = np.genfromtxt(pred, delimiter=",", names=True)
    p = moerate.Model.load(out).predict(X, quantiles=[0.1, 0.5, 0.9], y=y)
    assert np.array_equal(p["mean"], t["mean"]) and np.array_equal(p["variance"], t["variance"])
    for i, name in enumerate(["q01", "q05", "q09"]):
        assert np.array_equal(p["quantiles"][:, i], t[name]), name
    for j in range(2):
        assert np.array_equal(p["gates"][:, j], t[f"gate{j + 1}"])
        assert np.array_equal(p["posterior"][:, j], t[f"posterior{j + 1}"])
    assert p["gates"].shape == (600, 2) and np.allclose(p["gates"].sum(axis=1), 1)
    assert "posterior" not in moerate.Model.load(out).predict(X)


def test_loss_equals_cli(fitted):
    out, _, r = fitted
    s, _ = cli("loss", "--truth", TRUTH, "--fit", out, "--json", "--distances", "--mc", 500, "--seed", 4)
    lj = json.loads(s)
    mine = moerate.loss(moerate.Model.load(TRUTH), r, distances=True, mc=500, seed=4)
    for key in ("truth", "fit"):
        lj.pop(key)
    assert mine == lj
    assert mine["terms"]["weights"] >= 0 and mine["kind"] == "D1"
    # models, fit results, dicts and paths are accepted alike
    assert moerate.loss(TRUTH, out)["loss"] == moerate.loss(moerate.Model.load(TRUTH).to_json(), r.model)["loss"]


STUDY = {"name": "tiny", "truth": "data/experiment-a.json",
         "n": {"min": 100, "max": 400, "count": 3}, "replications": 3, "seed": 7,
         "settings": [{"label": "k=2", "k": 2, "starts": 2},
                      {"label": "k=3 near", "k": 3, "init": "near-truth", "max_iter": 200}]}


def test_sweep_and_rates_equal_cli(tmp_path):
    study = tmp_path / "study.json"
    study.write_text(json.dumps(STUDY))
    res = tmp_path / "r.csv"
    cli("sweep", "--config", study, "--out", res, "--threads", 2, "--quiet")
    t = moerate.sweep(STUDY, threads=2)
    c = moerate.ResultsTable.load(res)
    assert t.columns == c.columns and len(t) == len(c) == 18
    i = t.columns.index("seconds")
    drop = lambda rows: [r[:i] + r[i + 1:] for r in rows]
    assert drop(t.rows) == drop(c.rows)
    assert isinstance(t["m.loss"], np.ndarray) and t["setting"][0] == "k=2"
    s, _ = cli("rates", "--results", res, "--bootstrap", 200, "--seed", 3, "--theory", "loss=1/2",
               "--json", tmp_path / "rates.json")
    cj = json.load(open(tmp_path / "rates.json"))["fits"]
    mine = moerate.rates(t, bootstrap=200, seed=3, theory={"loss": "1/2"})
    assert mine == cj
    fit = next(f for f in mine if f["setting"] == "k=2" and f["metric"] == "m.loss")
    assert fit["theory"] == 0.5 and "exponent" in fit
    # a path works as well, and the table saves to the CLI's format
    t.save(tmp_path / "again.csv")
    assert moerate.rates(tmp_path / "again.csv", bootstrap=200, seed=3, theory={"loss": "1/2"}) == cj


def test_sweep_keeps_out_and_resumes(tmp_path):
    out = tmp_path / "r.csv"
    t = moerate.sweep(STUDY, out=out, shard=(0, 2), threads=1)
    assert out.exists() and len(t) == 9
    with pytest.raises(ValueError, match="results file exists"):
        moerate.sweep(STUDY, out=out)
    t2 = moerate.sweep(STUDY, out=out, resume=True)
    assert len(t2) == 18


def test_model_file_round_trips(fitted, tmp_path):
    out, j, r = fitted
    # CLI file -> Python -> file -> CLI
    m = moerate.Model.load(out)
    m.save(tmp_path / "m.json")
    assert moerate.Model.load(tmp_path / "m.json").to_json() == m.to_json()
    s1, _ = cli("loss", "--truth", TRUTH, "--fit", out, "--json")
    s2, _ = cli("loss", "--truth", TRUTH, "--fit", tmp_path / "m.json", "--json")
    assert json.loads(s1)["loss"] == json.loads(s2)["loss"]
    # Python fit -> file -> CLI
    r.save(tmp_path / "py-fit.json")
    assert json.load(open(tmp_path / "py-fit.json"))["log_likelihood"] == r.log_likelihood
    s3, _ = cli("loss", "--truth", TRUTH, "--fit", tmp_path / "py-fit.json", "--json")
    assert json.loads(s3)["loss"] == json.loads(s1)["loss"]
    # dicts
    assert moerate.Model.from_json(m.to_json()).to_json() == m.to_json()
    assert m.n_experts == 2 and m.dim == 1 and m.kind == "gaussian"
    assert m.gating == {"family": "softmax"} and m.expert == {"family": "linear"}
    assert len(m.params) == len(moerate.Model.load(TRUTH).params)
    import pickle
    assert pickle.loads(pickle.dumps(m)).to_json() == m.to_json()


def test_data_file_round_trip(data, tmp_path):
    _, X, y = data
    moerate.write_csv(tmp_path / "d.csv", X, y)
    X2, y2 = moerate.read_csv(tmp_path / "d.csv")
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    s, _ = cli("loglik", "--model", TRUTH, "--data", tmp_path / "d.csv", "--json")
    assert json.loads(s)["log_likelihood"] == moerate.Model.load(TRUTH).loglik(X, y)


def test_bad_input_raises_with_the_cli_message(data, tmp_path):
    path, X, y = data
    msg = cli_error("fit", "--data", path, "--experts", 2, "--expert", "nosuch", "--out", tmp_path / "f.json")
    with pytest.raises(ValueError) as e:
        moerate.fit(X, y, expert="nosuch")
    assert str(e.value) == msg
    msg = cli_error("fit", "--data", path, "--experts", 2, "--estimator", "nosuch", "--out", tmp_path / "f.json")
    with pytest.raises(ValueError) as e:
        moerate.fit(X, y, estimator="nosuch")
    assert str(e.value) == msg
    msg = cli_error("loglik", "--model", tmp_path / "missing.json", "--data", path)
    with pytest.raises(ValueError) as e:
        moerate.Model.load(tmp_path / "missing.json")
    assert str(e.value) == msg
    bad = tmp_path / "bad.json"
    bad.write_text('{"gating": {"family": "softmax"}, "experts": [}')
    msg = cli_error("simulate", "--model", bad, "--n", 5, "--out", tmp_path / "s.csv")
    with pytest.raises(ValueError) as e:
        moerate.simulate(bad, 5)
    assert str(e.value) == msg
    msg = cli_error("sweep", "--config", bad, "--out", tmp_path / "r.csv")
    with pytest.raises(ValueError) as e:
        moerate.sweep(bad)
    assert str(e.value) == msg


def test_bad_arrays_raise(data):
    _, X, y = data
    m = moerate.Model.load(TRUTH)
    Xn = X.copy()
    Xn[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"fit: X\[3, 0\] must be finite; got nan"):
        moerate.fit(Xn, y)
    with pytest.raises(ValueError, match="y must have one value per row of X"):
        moerate.fit(X, y[:-1])
    with pytest.raises(ValueError, match="must have 1 column"):
        m.predict(np.ones((4, 2)))
    with pytest.raises(ValueError, match="must be 1-D"):
        m.loglik(np.ones((2, 2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="number of starts must be >= 1"):
        moerate.fit(X, y, starts=0)
    with pytest.raises(ValueError, match="need at least"):
        moerate.fit(X[:1], y[:1], experts=2)
    with pytest.raises(ValueError, match="each probability must lie in"):
        m.predict(X, quantiles=[1.5])
    with pytest.raises(ValueError, match="translation"):
        moerate.loss(m, m, translation="nope")
    with pytest.raises(ValueError):
        moerate.rates(moerate.ResultsTable.load(data[0]))  # a data file has no metric columns
    with pytest.raises(TypeError):
        moerate.fit(X, y, 2)  # options are keywords


def test_1d_x_is_one_covariate(data):
    _, X, y = data
    m = moerate.Model.load(TRUTH)
    assert m.loglik(X[:, 0], y) == m.loglik(X, y)


def test_ctrl_c_interrupts_a_fit():
    """SIGINT during a long fit raises KeyboardInterrupt within a second or so."""
    code = (
        "import sys, time, moerate\n"
        "X, y = moerate.simulate(moerate.Model.load(sys.argv[1]), 20000, seed=1)\n"
        "print('ready', flush=True)\n"
        "t = time.time()\n"
        "try:\n"
        "    moerate.fit(X, y, experts=6, starts=200, abs_tol=0, max_iter=100000, threads=2)\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted after %.1f s' % (time.time() - t))\n"
    )
    env = dict(os.environ)
    p = subprocess.Popen([sys.executable, "-c", code, TRUTH], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert out.startswith("interrupted"), out
    assert time.time() - t0 < 10


def test_ctrl_c_interrupts_a_sweep_and_keeps_finished_tasks(tmp_path):
    out = tmp_path / "r.csv"
    code = (
        "import sys, moerate\n"
        "cfg = moerate.study_config('softmax-linear-exact', 'quick')\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    moerate.sweep(cfg, out=sys.argv[1], threads=2)\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    stdout, _ = p.communicate(timeout=60)
    assert stdout.strip() == "interrupted"
    t = moerate.ResultsTable.load(out)
    assert 0 < len(t) < 100  # the finished tasks, none marked failed
    assert "failed" not in t["stop_reason"]
