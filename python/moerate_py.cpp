// python/moerate_py.cpp -- the Python module `moerate` (pybind11).
//
// A thin edge over the library, like apps/: each function converts its
// arguments, calls the same library functions as the matching command
// (apps/cmd_NAME.cpp) and converts the result. Conventions at the boundary:
//   - X is n x d (one observation per row, as numpy users expect), converted to
//     the library's d x n; a 1-D X is one covariate (n x 1). y is 1-D of length n.
//   - JSON objects (model files, fit information, losses, rate fits) are Python
//     dicts, converted through the json module, so fields added to the library's
//     JSON appear in Python without changes here.
//   - Errors: moerate::InvalidArgument, InputError and std::invalid_argument
//     raise ValueError with the library's message (the one the CLI prints after
//     "moerate CMD: error: "); other std::exceptions raise RuntimeError.
//   - Long calls (fit, sweep, rates, standard errors, loss) run without the GIL; fit
//     and sweep poll a CancelHook (moerate/core/cancel.hpp) that runs Python's
//     signal handlers on the calling thread, so Ctrl-C raises KeyboardInterrupt.
//   - threads = 0 means all cores (OpenMP); OpenBLAS runs single-threaded during
//     a call (as in moerate::cli::configure_threads) and is restored afterwards,
//     so results do not depend on the thread count and equal the CLI's.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "moerate/core/cancel.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/estimators/inference.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/io/files.hpp"
#include "moerate/metrics/distances.hpp"
#include "moerate/metrics/voronoi.hpp"
#include "moerate/model/design.hpp"
#include "moerate/model/model.hpp"
#include "moerate/studies/builtin_studies.hpp"
#include "moerate/studies/rates.hpp"
#include "moerate/studies/sweep.hpp"

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);

namespace py = pybind11;
using moerate::json;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

// ---------------------------------------------------------------------------
// JSON <-> Python objects (through the json module: exact for doubles, both
// sides print 17 significant digits or the shortest round trip).

py::object to_py(const json& j) {
  // (No static py::object: it would be released after the interpreter.)
  return py::module_::import("json").attr("loads")(j.dump());
}

json from_py(const py::handle& o, const std::string& what) {
  const py::object dumps = py::module_::import("json").attr("dumps");
  std::string text;
  try {
    text = dumps(o, py::arg("allow_nan") = false).cast<std::string>();
  } catch (py::error_already_set& e) {
    throw moerate::InvalidArgument(what + ": not convertible to JSON (" + std::string(e.what()) + ")");
  }
  return json::parse(text);
}

// ---------------------------------------------------------------------------
// Arrays at the boundary.

/// X (n x d, or 1-D: n x 1) -> d x n. Every value must be finite.
arma::mat to_design(const py::handle& obj, const std::string& fn, std::size_t expect_dim = 0) {
  Array a = Array::ensure(obj);
  if (!a) throw moerate::InvalidArgument(fn + ": X must be a numeric array (n x d)");
  if (a.ndim() != 1 && a.ndim() != 2)
    moerate::fail(fn, "X", "must be 1-D (n) or 2-D (n x d)", std::to_string(a.ndim()) + "-D array");
  const std::size_t n = a.shape(0), d = a.ndim() == 2 ? a.shape(1) : 1;
  if (n == 0) moerate::fail(fn, "X", "must have at least one row", "0 rows");
  if (d == 0) moerate::fail(fn, "X", "must have at least one column", "0 columns");
  if (expect_dim && d != expect_dim)
    moerate::fail(fn, "X", "must have " + std::to_string(expect_dim) + " column(s), the model's dimension",
                  std::to_string(d) + " columns");
  arma::mat X(d, n);
  const double* p = a.data();
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t u = 0; u < d; ++u) {
      const double v = p[i * d + u];
      if (!std::isfinite(v))
        moerate::fail(fn, "X[" + std::to_string(i) + ", " + std::to_string(u) + "]", "must be finite", v);
      X(u, i) = v;
    }
  return X;
}

arma::rowvec to_response(const py::handle& obj, const std::string& fn, std::size_t n) {
  Array a = Array::ensure(obj);
  if (!a) throw moerate::InvalidArgument(fn + ": y must be a numeric array (n)");
  if (a.ndim() != 1 && !(a.ndim() == 2 && (a.shape(1) == 1 || a.shape(0) == 1)))
    moerate::fail(fn, "y", "must be 1-D (n)", std::to_string(a.ndim()) + "-D array");
  if (static_cast<std::size_t>(a.size()) != n)
    moerate::fail(fn, "y", "must have one value per row of X (" + std::to_string(n) + ")", a.size());
  arma::rowvec y(n);
  const double* p = a.data();
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) moerate::fail(fn, "y[" + std::to_string(i) + "]", "must be finite", p[i]);
    y[i] = p[i];
  }
  return y;
}

py::array_t<double> vec_to_py(const arma::rowvec& v) {
  py::array_t<double> a(v.n_elem);
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

/// A k x n (library layout) matrix -> n x k numpy array.
py::array_t<double> cols_to_rows(const arma::mat& M) {
  py::array_t<double> a({static_cast<py::ssize_t>(M.n_cols), static_cast<py::ssize_t>(M.n_rows)});
  double* p = a.mutable_data();
  for (std::size_t i = 0; i < M.n_cols; ++i)
    for (std::size_t j = 0; j < M.n_rows; ++j) p[i * M.n_rows + j] = M(j, i);
  return a;
}

std::string path_of(const py::handle& o) {
  return py::str(py::module_::import("os").attr("fspath")(o)).cast<std::string>();
}

bool is_path(const py::handle& o) {
  return py::isinstance<py::str>(o) || py::hasattr(o, "__fspath__");
}

// ---------------------------------------------------------------------------
// Threads, the GIL and Ctrl-C.

/// For one call: OpenBLAS single-threaded (restored afterwards), OpenMP's
/// default team size set to `threads` when > 0 (restored afterwards).
class ThreadScope {
public:
  explicit ThreadScope(int threads) : blas_(openblas_get_num_threads()) {
    if (threads < 0) moerate::fail("threads", "the number of threads", "must be >= 0 (0 = all cores)", threads);
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_ = omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(threads);
#endif
  }
  ~ThreadScope() {
    openblas_set_num_threads(blas_);
#ifdef _OPENMP
    omp_set_num_threads(omp_);
#endif
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

private:
  int blas_;
  int omp_ = 1;
};

/// The CancelHook of one call: on the calling thread, at most every 50 ms,
/// takes the GIL and runs Python's signal handlers (PyErr_CheckSignals); when
/// one raises (Ctrl-C: KeyboardInterrupt) the call is cancelled and the Python
/// error is left set for run_released to raise. Other threads only read the flag.
class Interrupt {
public:
  moerate::CancelHook hook() {
    return [this] { return poll(); };
  }
  bool poll() {
    if (stop_.load(std::memory_order_relaxed)) return true;
    if (std::this_thread::get_id() != owner_) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(50)) return false;
    last_ = now;
    PyGILState_STATE g = PyGILState_Ensure();
    if (PyErr_CheckSignals() != 0) stop_ = true;
    PyGILState_Release(g);
    return stop_.load();
  }

private:
  std::thread::id owner_ = std::this_thread::get_id();
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::atomic<bool> stop_{false};
};

/// Run f without the GIL; a Cancelled call re-raises the pending Python error
/// (KeyboardInterrupt) once the GIL is held again.
template <class F>
auto run_released(F&& f) -> decltype(f()) {
  try {
    py::gil_scoped_release release;
    return f();
  } catch (const moerate::Cancelled&) {
    if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);  // a hook cancels after an error, normally
    throw py::error_already_set();
  }
}

// ---------------------------------------------------------------------------
// Models.

moerate::GaussianMoE model_from(const py::handle& o, const std::string& what);

struct PyModel {
  moerate::GaussianMoE m;
};

/// The fitted model and everything FitResult::to_json() reports.
struct PyFit {
  moerate::FitResult r;
  json j;  // to_json() plus the fit settings (as `moerate fit --out` writes them)
};

moerate::GaussianMoE model_from(const py::handle& o, const std::string& what) {
  if (py::isinstance<PyModel>(o)) return o.cast<const PyModel&>().m;
  if (py::isinstance<PyFit>(o)) return o.cast<const PyFit&>().r.model;
  if (py::isinstance<py::dict>(o)) return moerate::GaussianMoE::from_json(from_py(o, what), what);
  if (is_path(o)) return moerate::GaussianMoE::load(path_of(o));
  throw moerate::InvalidArgument(what + ": expected a Model, a fit result, a model dict or a model file path");
}

std::string kind_name(moerate::ModelKind k) { return k == moerate::ModelKind::gaussian ? "gaussian" : "regression"; }

py::dict predict(const moerate::GaussianMoE& m, const py::handle& Xo, const std::vector<double>& quantiles,
                 const py::object& yo) {
  const arma::mat X = to_design(Xo, "predict", m.dim());
  arma::rowvec y;
  const bool with_y = !yo.is_none();
  if (with_y) y = to_response(yo, "predict", X.n_cols);
  struct Out {
    arma::mat P, Q, post;
    arma::rowvec mean, var;
  };
  const Out o = run_released([&] {
    ThreadScope threads(1);
    Out r;
    r.P = arma::exp(m.log_weights(X));
    r.mean = m.regression_function(X);
    r.var = m.predictive_variance(X);
    r.Q = m.predictive_quantiles(X, quantiles);
    if (with_y && m.kind() == moerate::ModelKind::gaussian) r.post = m.responsibilities(X, y);
    return r;
  });
  py::dict d;
  d["mean"] = vec_to_py(o.mean);
  d["variance"] = vec_to_py(o.var);
  d["quantiles"] = cols_to_rows(o.Q);
  d["levels"] = py::array_t<double>(quantiles.size(), quantiles.data());
  d["gates"] = cols_to_rows(o.P);
  if (!o.post.is_empty()) d["posterior"] = cols_to_rows(o.post);
  return d;
}

double loglik(const moerate::GaussianMoE& m, const py::handle& Xo, const py::handle& yo) {
  if (m.kind() != moerate::ModelKind::gaussian)
    throw moerate::InvalidArgument("loglik: the regression model has no likelihood; use mse()");
  const arma::mat X = to_design(Xo, "loglik", m.dim());
  const arma::rowvec y = to_response(yo, "loglik", X.n_cols);
  return run_released([&] {
    ThreadScope threads(1);
    return m.log_likelihood(X, y);
  });
}

// ---------------------------------------------------------------------------
// Results tables (the CSV of `moerate sweep`).

struct PyTable {
  moerate::CsvTable t;
  std::string source = "results";
};

py::object column(const PyTable& tab, const std::string& name) {
  if (!tab.t.has_column(name)) throw py::key_error("no column '" + name + "'");
  const std::size_t c = tab.t.column(name);
  std::vector<double> v(tab.t.rows.size());
  bool numeric = true;
  for (std::size_t i = 0; i < v.size() && numeric; ++i) {
    const std::string& s = tab.t.rows[i][c];
    if (s.empty() || s == "nan") {
      v[i] = std::nan("");
      continue;
    }
    try {
      std::size_t used = 0;
      v[i] = std::stod(s, &used);
      numeric = used == s.size();
    } catch (const std::exception&) {
      numeric = false;
    }
  }
  if (numeric) return py::array_t<double>(v.size(), v.data());
  py::list out;
  for (const auto& r : tab.t.rows) out.append(r[c]);
  return out;
}

std::string table_csv(const PyTable& tab) {
  return moerate::csv_table_text(tab.t.header, tab.t.rows);
}

PyTable table_from(const py::handle& o) {
  if (py::isinstance<PyTable>(o)) return o.cast<const PyTable&>();
  if (is_path(o)) {
    const std::string p = path_of(o);
    return PyTable{moerate::read_csv_table(p), p};
  }
  throw moerate::InvalidArgument("rates: results must be a ResultsTable (from sweep) or a results CSV path");
}

// ---------------------------------------------------------------------------
// The fit.

PyFit fit(const py::handle& Xo, const py::handle& yo, std::size_t experts, const std::string& expert,
          const std::string& gating, const std::string& estimator, int starts, std::uint64_t seed,
          const std::string& init, int max_iter, double tol, double ridge, double variance_floor, int threads,
          bool se, double abs_tol, double score_tol, const std::string& accelerate, const py::dict& bounds,
          double prune_factor) {
  // The same options and checks as `moerate fit` (apps/cmd_fit.cpp).
  moerate::FitOptions fo;
  fo.n_experts = experts;
  fo.expert = moerate::parse_family_spec(expert);
  fo.gating = moerate::parse_family_spec(gating);
  fo.init = moerate::InitSpec::parse(init);
  fo.estimator = estimator;
  fo.n_starts = starts;
  fo.prune_factor = prune_factor;
  fo.seed = seed;
  fo.threads = threads;
  fo.em.max_iter = max_iter;
  fo.em.tol = tol;
  fo.em.abs_tol = abs_tol;
  fo.em.score_tol = score_tol;
  fo.em.accelerate = moerate::parse_acceleration(accelerate);
  if (!bounds.empty()) {
    moerate::json b = moerate::json::object();
    for (const auto& kv : bounds) b[py::str(kv.first).cast<std::string>()] = kv.second.cast<double>();
    fo.em.bounds = moerate::ParameterBounds::from_json(b, "bounds");
  }
  fo.em.gate.ridge = ridge;
  fo.em.variance_floor = variance_floor;
  fo.validate();
  moerate::make_gating(fo.gating, fo.n_experts, 1);
  moerate::make_expert_family(fo.expert, 1);
  const arma::mat X = to_design(Xo, "fit");
  const arma::rowvec y = to_response(yo, "fit", X.n_cols);
  Interrupt interrupt;
  fo.em.cancel = interrupt.hook();
  PyFit out{run_released([&] {
              ThreadScope scope(threads);
              return moerate::fit(X, y, fo);
            }),
            json()};
  out.j = out.r.to_json();
  out.j["fit"]["seed"] = seed;
  out.j["fit"]["init"] = fo.init.label();
  std::vector<std::string> names;
  for (std::size_t u = 0; u < X.n_rows; ++u) names.push_back("x" + std::to_string(u + 1));
  out.j["fit"]["x_columns"] = names;
  out.j["fit"]["gate_x_columns"] = names;  // the Python fit has no gate covariates (the CLI's --gate-x)
  out.j["fit"]["y_column"] = "y";
  out.j["fit"]["max_iter"] = max_iter;
  out.j["fit"]["tol"] = tol;
  out.j["fit"]["abs_tol"] = abs_tol;
  out.j["fit"]["score_tol"] = score_tol;
  out.j["fit"]["accelerate"] = accelerate;
  out.j["fit"]["polish_every"] = fo.em.polish_every;
  out.j["fit"]["bounds"] = fo.em.bounds.to_json();
  out.j["fit"]["ridge"] = ridge;
  if (se) {
    if (out.r.model.kind() != moerate::ModelKind::gaussian)
      throw moerate::InvalidArgument("--se needs a Gaussian MoE fit (the regression model has no likelihood)");
    out.j["standard_errors"] = run_released([&] {
      ThreadScope scope(threads);
      return moerate::standard_errors(out.r.model, X, y).to_json();
    });
  }
  return out;
}

/// A key of the fit's JSON: top level first, then the "fit" object.
py::object fit_item(const PyFit& f, const std::string& key) {
  if (f.j.contains(key)) return to_py(f.j[key]);
  if (f.j.contains("fit") && f.j["fit"].contains(key)) return to_py(f.j["fit"][key]);
  throw py::key_error(key);
}

// ---------------------------------------------------------------------------
// Loss, sweep, rates.

py::dict loss(const py::handle& truth_o, const py::handle& fit_o, const std::string& translation,
              const std::map<int, double>& rbar, bool distances, const std::string& design, std::size_t mc,
              std::uint64_t seed) {
  // As `moerate loss` (apps/cmd_loss.cpp).
  if (translation != "default" && translation != "infimum")
    throw moerate::InvalidArgument("loss: translation must be 'default' or 'infimum'; got '" + translation + "'");
  if (distances && mc < 2) moerate::fail("loss", "mc", "must be >= 2", mc);
  moerate::VoronoiOptions vo;
  vo.infimum_translation = translation == "infimum";
  for (const auto& [m, r] : rbar) vo.rbar[m] = r;
  vo.design = design;  // each fitted atom's average gate weight, as the CLI
  vo.design_seed = seed;
  vo.validate();
  const auto truth = model_from(truth_o, "truth");
  const auto fitted = model_from(fit_o, "fit");
  const json j = run_released([&] {
    ThreadScope scope(1);
    json out = moerate::voronoi_loss(truth, fitted, vo).to_json();
    out["seed"] = seed;
    if (distances) {
      const auto D = moerate::density_distances(truth, fitted, design, mc, seed);
      auto nn = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
      out["distances"] = {{"hellinger", nn(D.hellinger)}, {"hellinger_se", nn(D.hellinger_se)},
                          {"tv", nn(D.tv)},               {"tv_se", nn(D.tv_se)},
                          {"l2", nn(D.l2)},               {"l2_se", nn(D.l2_se)},
                          {"design", design},             {"mc", mc},
                          {"seed", seed}};
    }
    return out;
  });
  return to_py(j);
}

PyTable sweep(const py::handle& study_o, const py::object& out_o, int threads, bool resume, const py::object& shard,
              bool progress) {
  json cfg;
  std::string source = "study";
  if (py::isinstance<py::dict>(study_o)) {
    cfg = from_py(study_o, "study");
  } else if (is_path(study_o)) {
    source = path_of(study_o);
    cfg = moerate::read_json_file(source);
  } else {
    throw moerate::InvalidArgument("sweep: study must be a study dict or a study file path");
  }
  moerate::SweepOptions so;
  so.threads = threads;
  so.resume = resume;
  so.progress = progress;
  if (!shard.is_none()) {
    const auto s = shard.cast<std::pair<std::size_t, std::size_t>>();
    so.shard = s.first;
    so.n_shards = s.second;
  }
  so.validate();
  const auto study = moerate::Study::from_json(cfg, source);
  // Without `out`, a private temporary file (removed afterwards).
  namespace fs = std::filesystem;
  std::string out;
  fs::path tmp_dir;
  if (out_o.is_none()) {
    if (resume) throw moerate::InvalidArgument("sweep: resume needs an out file");
    tmp_dir = fs::temp_directory_path() /
              ("moerate-sweep-" + std::to_string(::getpid()) + "-" +
               std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(tmp_dir);
    out = (tmp_dir / "results.csv").string();
  } else {
    out = path_of(out_o);
  }
  Interrupt interrupt;
  so.cancel = interrupt.hook();
  auto cleanup = [&] {
    if (!tmp_dir.empty()) {
      std::error_code ec;
      fs::remove_all(tmp_dir, ec);
    }
  };
  try {
    PyTable t = run_released([&] {
      ThreadScope scope(threads);
      moerate::run_sweep(study, out, so);
      return PyTable{moerate::read_csv_table(out), out_o.is_none() ? std::string("results") : out};
    });
    cleanup();
    return t;
  } catch (...) {
    cleanup();
    throw;
  }
}

bool all_missing(const moerate::LossTable& t) {
  for (std::size_t i = 0; i < t.size(); ++i)
    if (!std::isnan(t.loss[i]) && (t.status.empty() || t.status[i] != moerate::RowStatus::failed)) return false;
  return true;
}

py::list rates(const py::handle& results, const std::vector<std::string>& metrics_req,
               const std::vector<std::string>& settings_req, const py::object& theory_o, int bootstrap, double level,
               std::uint64_t seed, bool exclude_capped, int threads) {
  // As `moerate rates` (apps/rate_options.cpp, apps/cmd_rates.cpp): one entry
  // per (setting, metric) with values, as in its --json "fits".
  if (bootstrap < 0) moerate::fail("rates", "bootstrap", "must be >= 0", bootstrap);
  if (!(level > 0 && level < 1)) moerate::fail("rates", "level", "must be in (0, 1)", level);
  const PyTable tab = table_from(results);
  std::vector<std::string> theory_specs;
  if (py::isinstance<py::dict>(theory_o)) {
    for (const auto& [k, v] : theory_o.cast<py::dict>())
      theory_specs.push_back(py::str(k).cast<std::string>() + "=" + py::str(v).cast<std::string>());
  } else if (!theory_o.is_none()) {
    for (const auto& v : theory_o) theory_specs.push_back(py::str(v).cast<std::string>());
  }
  moerate::RateFitOptions fo;
  fo.bootstrap = bootstrap;
  fo.level = level;
  fo.seed = seed;
  fo.exclude_capped = exclude_capped;
  fo.validate();
  const auto metrics = moerate::resolve_metrics(tab.t, metrics_req);
  const auto theory = moerate::parse_theory(theory_specs, metrics);
  if (metrics.empty()) throw moerate::InputError(tab.source, 1, 0, "no metric columns (names starting with 'm.')");
  auto settings = moerate::settings_of(tab.t);
  for (const auto& s : settings_req)
    if (std::find(settings.begin(), settings.end(), s) == settings.end()) {
      std::string list;  // the message of `moerate rates --setting`
      for (const auto& a : settings) list += (list.empty() ? "'" : ", '") + a + "'";
      throw moerate::InvalidArgument("setting '" + s + "' is not in " + tab.source + " (settings: " + list + ")");
    }
  if (!settings_req.empty()) settings = settings_req;
  const json fits = run_released([&] {
    ThreadScope scope(threads);
    json out = json::array();
    for (const auto& setting : settings)
      for (const auto& metric : metrics) {
        const auto lt = moerate::loss_table_from_results(tab.t, metric, setting, tab.source);
        if (lt.size() == 0 || all_missing(lt)) continue;
        const auto f = moerate::fit_rate(lt, fo);
        json entry = f.to_json();
        entry["setting"] = setting;
        entry["metric"] = metric;
        if (auto it = theory.find(metric); it != theory.end()) {
          entry["theory"] = it->second;
          entry["theory_in_ci"] = f.fitted && f.ci_low <= it->second && it->second <= f.ci_high;
        } else {
          entry["theory"] = nullptr;
        }
        out.push_back(std::move(entry));
      }
    return out;
  });
  return to_py(fits);
}

}  // namespace

PYBIND11_MODULE(moerate, mod) {
  mod.doc() =
      "moerate: estimate mixtures of experts and measure how fast the estimates converge.\n\n"
      "X is n x d (one observation per row), y has length n. Model files, fit information,\n"
      "losses and rate fits are dicts in the JSON formats of the command line (docs/formats.md).\n"
      "See docs/python.md.";
  mod.attr("__version__") = MOERATE_VERSION;

  // Exceptions: bad input is ValueError with the library's message.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const moerate::InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::invalid_argument& e) {  // moerate::InvalidArgument too
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const json::exception& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<PyModel>(mod, "Model",
                      "A mixture of experts (a model file of the command line): gating, experts, variances.")
      .def_static(
          "load", [](const py::object& path) { return PyModel{moerate::GaussianMoE::load(path_of(path))}; },
          py::arg("path"), "Read a model file (JSON), e.g. data/experiment-a.json or the output of `moerate fit`.")
      .def_static(
          "from_json", [](const py::object& o) { return PyModel{model_from(o, "model")}; }, py::arg("model"),
          "A model from a dict in the model-file format.")
      .def(
          "save",
          [](const PyModel& self, const py::object& path) {
            moerate::write_file_atomic(path_of(path), self.m.to_json().dump(2) + "\n");
          },
          py::arg("path"), "Write the model file (JSON; read by Model.load and by the command line).")
      .def(
          "to_json", [](const PyModel& self) { return to_py(self.m.to_json()); },
          "The model file as a dict.")
      .def(
          "loglik", [](const PyModel& self, const py::object& X, const py::object& y) { return loglik(self.m, X, y); },
          py::arg("X"), py::arg("y"), "Total log-likelihood sum_i log p(y_i | x_i) (as `moerate loglik`).")
      .def(
          "mse",
          [](const PyModel& self, const py::object& Xo, const py::object& yo) {
            const arma::mat X = to_design(Xo, "mse", self.m.dim());
            const arma::rowvec y = to_response(yo, "mse", X.n_cols);
            return run_released([&] {
              ThreadScope threads(1);
              return static_cast<double>(arma::mean(arma::square(y - self.m.regression_function(X))));
            });
          },
          py::arg("X"), py::arg("y"), "Mean squared error of the regression function (as `moerate loglik`).")
      .def(
          "predict",
          [](const PyModel& self, const py::object& X, const std::vector<double>& quantiles, const py::object& y) {
            return predict(self.m, X, quantiles, y);
          },
          py::arg("X"), py::arg("quantiles") = std::vector<double>{0.05, 0.5, 0.95}, py::arg("y") = py::none(),
          "Predictive mean (n), variance (n), quantiles (n x len(quantiles)), gate weights (n x k) and,\n"
          "given y, posterior expert probabilities (n x k), as a dict of arrays (as `moerate predict`).")
      .def(py::pickle([](const PyModel& self) { return self.m.to_json().dump(); },
                      [](const std::string& text) { return PyModel{moerate::GaussianMoE::from_json(json::parse(text), "pickle")}; }))
      .def_property_readonly("n_experts", [](const PyModel& self) { return self.m.n_experts(); })
      .def_property_readonly("dim", [](const PyModel& self) { return self.m.dim(); })
      .def_property_readonly("kind", [](const PyModel& self) { return kind_name(self.m.kind()); })
      .def_property_readonly("gating", [](const PyModel& self) { return to_py(self.m.gating().family_json()); })
      .def_property_readonly("expert", [](const PyModel& self) { return to_py(self.m.experts().family_json()); })
      .def_property_readonly(
          "params",
          [](const PyModel& self) {
            const arma::vec theta = self.m.flat_params();
            const auto names = self.m.flat_names();
            py::dict d;
            for (std::size_t i = 0; i < names.size(); ++i) d[py::str(names[i])] = theta[i];
            return d;
          },
          "The flat parameter vector by name (gating, eta_1..eta_k, log nu_1..k).")
      .def("__repr__", [](const PyModel& self) {
        return "<moerate.Model " + kind_name(self.m.kind()) + ", k = " + std::to_string(self.m.n_experts()) +
               ", d = " + std::to_string(self.m.dim()) + ", gating " + self.m.gating().family_json().dump() +
               ", experts " + self.m.experts().family_json().dump() + ">";
      });

  py::class_<PyFit>(mod, "FitResult",
                    "The result of moerate.fit: the best start's model and everything `moerate fit --out` writes.\n"
                    "Every key of that JSON (top level, then its \"fit\" object) is also an attribute and an item.")
      .def_property_readonly("model", [](const PyFit& self) { return PyModel{self.r.model}; })
      .def_property_readonly("log_likelihood", [](const PyFit& self) { return self.r.log_likelihood; })
      .def_property_readonly("stop_reason", [](const PyFit& self) { return moerate::stop_reason_name(self.r.stop_reason); })
      .def_property_readonly("iterations", [](const PyFit& self) { return self.r.iterations; })
      .def_property_readonly("trace", [](const PyFit& self) {
        return py::array_t<double>(self.r.em.trace.size(), self.r.em.trace.data());
      }, "Log-likelihood after each iteration of the best start (index 0 = the start).")
      .def_property_readonly("standard_errors", [](const PyFit& self) -> py::object {
        if (!self.j.contains("standard_errors")) return py::none();
        return to_py(self.j["standard_errors"]);
      }, "The \"standard_errors\" object (fit(..., se=True)), else None.")
      .def_property_readonly("info", [](const PyFit& self) { return to_py(self.j["fit"]); },
                             "The \"fit\" object: estimator, stop reason, starts, diagnostics, settings.")
      .def("to_json", [](const PyFit& self) { return to_py(self.j); },
           "Everything as a dict: the model file plus fit information (the format of `moerate fit --out`).")
      .def(
          "save",
          [](const PyFit& self, const py::object& path) { moerate::write_file_atomic(path_of(path), self.j.dump(2) + "\n"); },
          py::arg("path"), "Write the model file plus fit information (readable by Model.load and the CLI).")
      .def("keys", [](const PyFit& self) {
        py::list out;
        for (const auto& [k, v] : self.j.items()) out.append(k);
        if (self.j.contains("fit"))
          for (const auto& [k, v] : self.j["fit"].items())
            if (!self.j.contains(k)) out.append(k);
        return out;
      })
      .def("__getitem__", &fit_item)
      .def("__getattr__", [](const PyFit& self, const std::string& key) {
        try {
          return fit_item(self, key);
        } catch (const py::key_error&) {
          throw py::attribute_error("'FitResult' object has no attribute '" + key + "'");
        }
      })
      .def("__repr__", [](const PyFit& self) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.10g", self.r.log_likelihood);
        return "<moerate.FitResult " + self.r.estimator + ", k = " + std::to_string(self.r.model.n_experts()) +
               ", log-likelihood " + buf + ", " + std::to_string(self.r.iterations) + " iterations, stopped: " +
               moerate::stop_reason_name(self.r.stop_reason) + ">";
      });

  py::class_<PyTable>(mod, "ResultsTable",
                      "A results table of moerate.sweep (the CSV of `moerate sweep`): one row per task.\n"
                      "table['m.loss'] is a float array (nan where empty); text columns are lists of str.")
      .def_static(
          "load", [](const py::object& path) { return PyTable{moerate::read_csv_table(path_of(path)), path_of(path)}; },
          py::arg("path"))
      .def(
          "save", [](const PyTable& self, const py::object& path) { moerate::write_file_atomic(path_of(path), table_csv(self)); },
          py::arg("path"), "Write the CSV (readable by `moerate rates --results`).")
      .def_property_readonly("columns", [](const PyTable& self) { return self.t.header; })
      .def_property_readonly("rows", [](const PyTable& self) { return self.t.rows; }, "Rows as lists of strings.")
      .def("__len__", [](const PyTable& self) { return self.t.rows.size(); })
      .def("__getitem__", &column, py::arg("column"))
      .def("__contains__", [](const PyTable& self, const std::string& c) { return self.t.has_column(c); })
      .def("to_dict", [](const PyTable& self) {
        py::dict d;
        for (const auto& h : self.t.header) d[py::str(h)] = column(self, h);
        return d;
      }, "Column name -> array (or list of str); pandas.DataFrame(table.to_dict()) makes a data frame.")
      .def("to_csv", &table_csv)
      .def("__repr__", [](const PyTable& self) {
        return "<moerate.ResultsTable " + std::to_string(self.t.rows.size()) + " rows, " +
               std::to_string(self.t.header.size()) + " columns>";
      });

  mod.def("fit", &fit, py::arg("X"), py::arg("y"), py::kw_only(), py::arg("experts") = 2,
          py::arg("expert") = "linear", py::arg("gating") = "softmax", py::arg("estimator") = "em",
          py::arg("starts") = 10, py::arg("seed") = 1, py::arg("init") = "kmeans",
          py::arg("max_iter") = moerate::EMOptions{}.max_iter, py::arg("tol") = 0.0, py::arg("ridge") = 0.0,
          py::arg("variance_floor") = 1e-6, py::arg("threads") = 0, py::arg("se") = false,
          py::arg("abs_tol") = moerate::EMOptions{}.abs_tol, py::arg("score_tol") = moerate::EMOptions{}.score_tol,
          py::arg("accelerate") = "squarem-newton", py::arg("bounds") = py::dict(),
          py::arg("prune_factor") = moerate::FitOptions{}.prune_factor,
          "Fit a mixture of experts (as `moerate fit`): `starts` starts of the estimator, the best kept.\n"
          "X is n x d, y has length n. expert: linear | ffn:ACT | ...; gating: softmax | ...; estimator:\n"
          "em | mle | lse; init: kmeans | random | model:FILE | near-truth:FILE. threads = 0: all cores\n"
          "(the result does not depend on it). se=True adds standard errors. Stopping: abs_tol and score_tol\n"
          "(the certificate, result['fit']['certificate']); tol > 0 adds the literature's relative rule.\n"
          "accelerate: squarem-newton | squarem | none. bounds: {'gate_slope': 50, 'nu_min': 1e-3, ...}.\n"
          "prune_factor: stop a dominated EM start early (as --prune-factor; 0 = every start to its end). Ctrl-C interrupts.");

  mod.def(
      "simulate",
      [](const py::object& model_o, std::size_t n, const std::string& design, std::uint64_t seed) {
        // As `moerate simulate` (apps/cmd_simulate.cpp).
        if (n < 1) moerate::fail("simulate", "n", "must be >= 1", n);
        const auto m = model_from(model_o, "model");
        arma::mat X;
        arma::rowvec y;
        run_released([&] {
          ThreadScope threads(1);
          moerate::Rng rng(seed);
          X = moerate::draw_design(design, m.dim(), n, rng);
          y = m.simulate(X, rng);
        });
        return py::make_tuple(cols_to_rows(X), vec_to_py(y));
      },
      py::arg("model"), py::arg("n"), py::arg("design") = "uniform:0,1", py::arg("seed") = 1,
      "Draw (X, y) from a model (as `moerate simulate`): X is n x d from the design\n"
      "(uniform:LO,HI | normal:MU,SD | grid:LO,HI per coordinate), y from the model.");

  mod.def("loss", &loss, py::arg("truth"), py::arg("fit"), py::kw_only(), py::arg("translation") = "default",
          py::arg("rbar") = std::map<int, double>{}, py::arg("distances") = false, py::arg("design") = "uniform:0,1",
          py::arg("mc") = 2000, py::arg("seed") = 1,
          "Voronoi loss D1/D2 of a fit against the truth with every term (as `moerate loss --json`):\n"
          "a dict with 'loss' (the total), 'kind', 'terms', 'cells', 'exponents', ...; with\n"
          "distances=True also Hellinger, TV and L2 distances over the design.");

  mod.def("sweep", &sweep, py::arg("study"), py::kw_only(), py::arg("out") = py::none(), py::arg("threads") = 0,
          py::arg("resume") = false, py::arg("shard") = py::none(), py::arg("progress") = false,
          "Run a convergence-rate study (a study dict or file, as `moerate sweep`) and return its\n"
          "ResultsTable. out: also keep the CSV there (resume=True continues it); shard=(i, N).\n"
          "Results do not depend on threads. Ctrl-C stops it (finished tasks stay in out).");

  mod.def("rates", &rates, py::arg("results"), py::kw_only(), py::arg("metrics") = std::vector<std::string>{},
          py::arg("settings") = std::vector<std::string>{}, py::arg("theory") = py::none(),
          py::arg("bootstrap") = 2000, py::arg("level") = 0.95, py::arg("seed") = 1, py::arg("exclude_capped") = false,
          py::arg("threads") = 0,
          "Convergence rates L ~ C n^(-e) per setting and metric with bootstrap intervals (the \"fits\"\n"
          "of `moerate rates --json`). results: a ResultsTable or a results CSV path. theory: a dict\n"
          "{metric: exponent} (exponents may be strings like '1/8') or a list as for --theory.");

  mod.def(
      "families",
      [] {
        // As `moerate list`.
        py::dict out, g, e, s;
        for (const auto& [name, info] : moerate::gating_registry()) g[py::str(name)] = info.description;
        for (const auto& [name, info] : moerate::expert_registry()) e[py::str(name)] = info.description;
        for (const auto& [name, info] : moerate::estimator_registry()) s[py::str(name)] = info.description;
        out["gating"] = g;
        out["expert"] = e;
        out["estimator"] = s;
        return out;
      },
      "Gating families, expert families and estimators with their descriptions (as `moerate list`).");

  mod.def(
      "study_config",
      [](const std::string& name, const std::string& scale) { return to_py(moerate::builtin_study_config(name, scale)); },
      py::arg("name"), py::arg("scale") = "quick",
      "The study file (a dict) of a built-in study: softmax-linear-exact, softmax-linear-over, linear-vs-ffn.");

  mod.def(
      "standard_errors",
      [](const py::object& model_o, const py::object& Xo, const py::object& yo, double level) {
        const auto m = model_from(model_o, "model");
        if (m.kind() != moerate::ModelKind::gaussian)
          throw moerate::InvalidArgument("standard_errors: needs a Gaussian MoE fit (the regression model has no likelihood)");
        const arma::mat X = to_design(Xo, "standard_errors", m.dim());
        const arma::rowvec y = to_response(yo, "standard_errors", X.n_cols);
        moerate::SeOptions so;
        so.level = level;
        so.validate();
        return to_py(run_released([&] {
          ThreadScope threads(1);
          return moerate::standard_errors(m, X, y, so).to_json();
        }));
      },
      py::arg("model"), py::arg("X"), py::arg("y"), py::arg("level") = 0.95,
      "Standard errors (observed information and sandwich) with Wald intervals, as `moerate fit --se`.");

  mod.def(
      "read_csv",
      [](const py::object& path, const py::object& y, const py::object& x) {
        moerate::CsvReadOptions ro;
        if (!y.is_none()) ro.y_column = y.cast<std::string>();
        if (!x.is_none()) ro.x_columns = x.cast<std::vector<std::string>>();
        const auto D = moerate::read_csv(path_of(path), ro);
        return py::make_tuple(cols_to_rows(D.X), vec_to_py(D.y));
      },
      py::arg("path"), py::kw_only(), py::arg("y") = py::none(), py::arg("x") = py::none(),
      "Read a data CSV as the command line does: (X n x d, y), y the column 'y' unless named.");

  mod.def(
      "write_csv",
      [](const py::object& path, const py::object& Xo, const py::object& yo, const py::object& names_o) {
        const arma::mat X = to_design(Xo, "write_csv");
        const arma::rowvec y = to_response(yo, "write_csv", X.n_cols);
        std::vector<std::string> names;
        if (names_o.is_none())
          for (std::size_t u = 0; u < X.n_rows; ++u) names.push_back("x" + std::to_string(u + 1));
        else
          names = names_o.cast<std::vector<std::string>>();
        if (names.size() != X.n_rows) moerate::fail("write_csv", "names", "must name every column of X", names.size());
        moerate::write_dataset_csv(path_of(path), X, y, names);
      },
      py::arg("path"), py::arg("X"), py::arg("y"), py::arg("names") = py::none(),
      "Write a data CSV (columns x1..xd, y; 17 significant digits) for the command line.");
}
