#include "moerate/studies/sweep.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "moerate/io/csv.hpp"
#include "moerate/model/design.hpp"
#include "moerate/metrics/distances.hpp"
#include "moerate/core/error.hpp"
#include "moerate/io/files.hpp"

namespace moerate {

std::vector<std::size_t> log_grid(std::size_t lo, std::size_t hi, std::size_t count) {
  if (lo < 1 || hi < lo) throw InvalidArgument("log_grid: need 1 <= min <= max; got " + std::to_string(lo) + ", " + std::to_string(hi));
  if (count < 1) throw InvalidArgument("log_grid: count must be >= 1");
  std::vector<std::size_t> g;
  for (std::size_t i = 0; i < count; ++i) {
    const double t = count == 1 ? 0.0 : double(i) / double(count - 1);
    const auto v = static_cast<std::size_t>(std::llround(std::exp(std::log(double(lo)) + t * (std::log(double(hi)) - std::log(double(lo))))));
    if (g.empty() || v > g.back()) g.push_back(v);
  }
  return g;
}

void SweepOptions::validate() const {
  if (threads < 0) fail("sweep", "threads", "must be >= 0", threads);
  if (n_shards < 1) fail("sweep", "number of shards", "must be >= 1", n_shards);
  if (shard >= n_shards) fail("sweep", "shard index", "must be < number of shards " + std::to_string(n_shards), shard);
}

namespace {

GaussianMoE load_truth(const json& spec, const std::string& base_dir, const std::string& where) {
  if (spec.is_string()) {
    std::filesystem::path p(spec.get<std::string>());
    if (p.is_relative() && !std::filesystem::exists(p) && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
    return GaussianMoE::load(p.string());
  }
  if (spec.is_object()) return GaussianMoE::from_json(spec, where);
  throw InvalidArgument(where + ": a truth is a model-file path or an inline model object");
}

template <class T>
T get_or(const json& j, const char* key, T def, const std::string& where) {
  if (!j.contains(key)) return def;
  try {
    return j[key].get<T>();
  } catch (const std::exception&) {
    throw InvalidArgument(where + "." + key + ": wrong type; got " + j[key].dump());
  }
}

/// An integer field in [lo, hi] (default def when absent); negative or
/// fractional values are refused, not wrapped around.
long long get_int(const json& j, const char* key, long long def, long long lo, long long hi, const std::string& where) {
  if (!j.contains(key)) return def;
  const json& v = j[key];
  if (!v.is_number_integer())
    throw InvalidArgument(where + "." + key + ": must be an integer; got " + v.dump());
  if (v.is_number_unsigned() && v.get<unsigned long long>() > static_cast<unsigned long long>(hi))
    throw InvalidArgument(where + "." + key + ": must be between " + std::to_string(lo) + " and " + std::to_string(hi) + "; got " + v.dump());
  const long long x = v.get<long long>();
  if (x < lo || x > hi)
    throw InvalidArgument(where + "." + key + ": must be between " + std::to_string(lo) + " and " + std::to_string(hi) + "; got " + v.dump());
  return x;
}

double get_finite(const json& j, const char* key, double def, const std::string& where) {
  if (!j.contains(key)) return def;
  if (!j[key].is_number()) throw InvalidArgument(where + "." + key + ": must be a number; got " + j[key].dump());
  const double x = j[key].get<double>();
  if (!std::isfinite(x)) throw InvalidArgument(where + "." + key + ": must be finite; got " + j[key].dump());
  return x;
}

}  // namespace

Study Study::from_json(const json& j, const std::string& source_name) {
  auto err = [&](const std::string& m) { return InputError(source_name, 0, 0, m); };
  try {
    if (!j.is_object()) throw err("a study file must be a JSON object");
    Study s;
    s.source = j;
    s.name = get_or<std::string>(j, "name", "study", "study");
    const std::string base = std::filesystem::path(source_name).has_parent_path()
                                 ? std::filesystem::path(source_name).parent_path().string()
                                 : std::string();
    // Truths: "truth" (one) or "truths" {name: model}.
    std::map<std::string, std::size_t> truth_ix;
    if (j.contains("truths")) {
      if (!j["truths"].is_object() || j["truths"].empty()) throw err("\"truths\" must be a non-empty object {name: model}");
      for (const auto& [name, spec] : j["truths"].items()) {
        truth_ix[name] = s.truths.size();
        s.truths.push_back(load_truth(spec, base, "truths." + name));
        s.truth_names.push_back(name);
      }
    } else if (j.contains("truth")) {
      s.truths.push_back(load_truth(j["truth"], base, "truth"));
      s.truth_names.push_back("truth");
      truth_ix["truth"] = 0;
    } else {
      throw err("missing \"truth\" (a model file or object) or \"truths\"");
    }
    s.design = get_or<std::string>(j, "design", s.design, "study");
    // Sample sizes.
    if (!j.contains("n")) throw err("missing \"n\": {\"min\", \"max\", \"count\"} or {\"values\": [...]}");
    const json& n = j["n"];
    const long long nmax = static_cast<long long>(kMaxObservations);
    if (n.is_object() && n.contains("values")) {
      if (!n["values"].is_array() || n["values"].empty()) throw err("n.values: must be a non-empty array of sizes");
      if (n["values"].size() > kMaxCount) throw err("n.values: at most " + std::to_string(kMaxCount) + " sizes");
      for (const auto& v : n["values"]) {
        if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<unsigned long long>() > kMaxObservations) ||
            v.get<long long>() < 2 || v.get<long long>() > nmax)
          throw err("n.values: sizes must be integers between 2 and " + std::to_string(kMaxObservations) + "; got " + v.dump());
        s.n_grid.push_back(v.get<std::size_t>());
      }
      std::sort(s.n_grid.begin(), s.n_grid.end());
      s.n_grid.erase(std::unique(s.n_grid.begin(), s.n_grid.end()), s.n_grid.end());
    } else if (n.is_object()) {
      for (const auto& [key, v] : n.items())
        if (key != "min" && key != "max" && key != "count" && key != "spacing")
          throw err("n: unknown key \"" + key + "\" (known: min, max, count, spacing, or values)");
      const auto lo = static_cast<std::size_t>(get_int(n, "min", 100, 2, nmax, "n"));
      const auto hi = static_cast<std::size_t>(get_int(n, "max", 10000, 2, nmax, "n"));
      const auto count = static_cast<std::size_t>(get_int(n, "count", 10, 1, static_cast<long long>(kMaxCount), "n"));
      if (hi < lo) throw err("n.min must be <= n.max; got min " + std::to_string(lo) + ", max " + std::to_string(hi));
      const std::string spacing = get_or<std::string>(n, "spacing", "log", "n");
      if (spacing == "log") {
        s.n_grid = log_grid(lo, hi, count);
      } else if (spacing == "linear") {
        for (std::size_t i = 0; i < count; ++i)
          s.n_grid.push_back(count == 1 ? lo : lo + static_cast<std::size_t>((long double)(hi - lo) * i / (count - 1)));
        s.n_grid.erase(std::unique(s.n_grid.begin(), s.n_grid.end()), s.n_grid.end());
      } else {
        throw err("n.spacing must be \"log\" (default) or \"linear\"; got \"" + spacing + "\"");
      }
    } else {
      throw err("\"n\" must be an object");
    }
    if (s.n_grid.empty()) throw err("the n grid is empty");
    s.replications = static_cast<int>(get_int(j, "replications", 10, 1, static_cast<long long>(kMaxCount), "study"));
    if (j.contains("seed") && !(j["seed"].is_number_unsigned() ||
                                (j["seed"].is_number_integer() && j["seed"].get<long long>() >= 0)))
      throw err("study.seed: must be an integer >= 0; got " + j["seed"].dump());
    s.seed = get_or<std::uint64_t>(j, "seed", 1, "study");
    s.distances = get_or<bool>(j, "distances", false, "study");
    s.distance_mc = static_cast<std::size_t>(get_int(j, "distance_mc", 500, 1, static_cast<long long>(kMaxCount), "study"));
    if (j.contains("rbar")) {
      if (!j["rbar"].is_object()) throw err("\"rbar\" must be an object {\"4\": 8, ...}");
      for (const auto& [m, r] : j["rbar"].items()) {
        int order = 0;
        const auto res = std::from_chars(m.data(), m.data() + m.size(), order);
        if (res.ec != std::errc() || res.ptr != m.data() + m.size() || order < 1 || order > 1000)
          throw err("rbar: keys are orders, integers between 1 and 1000 (e.g. {\"4\": 8}); got key \"" + m + "\"");
        if (!r.is_number() || !std::isfinite(r.get<double>()))
          throw err("rbar.\"" + m + "\": must be a finite number; got " + r.dump());
        s.voronoi.rbar[order] = r.get<double>();
      }
    }
    s.voronoi.infimum_translation = get_or<std::string>(j, "translation", "default", "study") == "infimum";
    s.voronoi.validate();
    for (std::size_t t = 0; t < s.truths.size(); ++t) {
      if (!s.truths[t].covariates().shared())
        throw err("truth " + std::to_string(t + 1) + " has gate covariates (" + s.truths[t].covariates().describe() +
                  "): studies fit every truth on one shared design and do not support them; "
                  "use fit/select/bootstrap --gate-x on simulated data instead");
      Rng probe(1);
      try {
        (void)draw_design(s.design, s.truths[t].dim(), 2, probe);
      } catch (const std::exception& e) {
        throw err(std::string("study.design: ") + e.what());
      }
      check_problem_size("study", s.n_grid.back(), s.truths[t].dim());
    }
    if (!j.contains("settings") || !j["settings"].is_array() || j["settings"].empty())
      throw err("missing \"settings\": a non-empty array of fit settings");
    std::set<std::string> labels;
    for (std::size_t i = 0; i < j["settings"].size(); ++i) {
      const json& f = j["settings"][i];
      const std::string where = "settings[" + std::to_string(i) + "]";
      if (!f.is_object()) throw err(where + ": expected an object");
      StudySetting st;
      const std::string tname = get_or<std::string>(f, "truth", s.truth_names[0], where);
      if (!truth_ix.count(tname)) throw err(where + ".truth: no truth named '" + tname + "'");
      st.truth_index = truth_ix[tname];
      const GaussianMoE& truth = s.truths[st.truth_index];
      auto family = [&](const char* key, const json& def) {
        if (!f.contains(key)) return def;
        if (f[key].is_string()) return parse_family_spec(f[key].get<std::string>());
        return f[key];
      };
      st.fit.n_experts = static_cast<std::size_t>(get_int(f, "k", static_cast<long long>(truth.n_experts()), 1, 1000, where));
      st.fit.expert = family("expert", truth.experts().family_json());
      st.fit.gating = family("gating", truth.gating().family_json());
      st.fit.estimator = get_or<std::string>(f, "estimator", "em", where);
      if (truth.kind() == ModelKind::bernoulli) st.fit.response = ModelKind::bernoulli;  // the truth's response
      st.fit.init = InitSpec::parse(get_or<std::string>(f, "init", "kmeans", where) == "near-truth"
                                        ? std::string("near-truth")
                                        : get_or<std::string>(f, "init", "kmeans", where));
      if (f.contains("near_truth")) {
        const json& nt = f["near_truth"];
        st.fit.init.gate_scale = get_finite(nt, "gate_scale", st.fit.init.gate_scale, where + ".near_truth");
        st.fit.init.expert_scale = get_finite(nt, "expert_scale", st.fit.init.expert_scale, where + ".near_truth");
        st.fit.init.exponent = get_finite(nt, "exponent", st.fit.init.exponent, where + ".near_truth");
      }
      st.fit.n_starts = static_cast<int>(get_int(f, "starts", 1, 1, 100000, where));
      st.fit.prune_factor = get_finite(f, "prune_factor", st.fit.prune_factor, where);
      if (!(st.fit.prune_factor >= 0)) throw err(where + ".prune_factor: must be >= 0; got " + format_double(st.fit.prune_factor));
      const EMOptions em_defaults;
      st.fit.em.max_iter = static_cast<int>(get_int(f, "max_iter", em_defaults.max_iter, 1, 100000000, where));
      st.fit.em.tol = get_finite(f, "tol", em_defaults.tol, where);  // the relative rule, off by default
      st.fit.em.abs_tol = get_finite(f, "abs_tol", em_defaults.abs_tol, where);
      st.fit.em.score_tol = get_finite(f, "score_tol", em_defaults.score_tol, where);
      st.fit.em.accelerate = parse_acceleration(get_or<std::string>(f, "accelerate", "squarem-newton", where));
      if (f.contains("bounds")) st.fit.em.bounds = ParameterBounds::from_json(f["bounds"], where + ".bounds");
      st.fit.em.gate.ridge = get_finite(f, "ridge", 0.0, where);
      st.fit.em.gate.max_steps = static_cast<int>(get_int(f, "gate_steps", 0, 0, 1000, where));  // 0 = the family's default
      for (const char* key : {"tol", "abs_tol", "score_tol", "ridge"})
        if (f.contains(key) && f[key].get<double>() < 0) throw err(where + "." + key + ": must be >= 0; got " + f[key].dump());
      st.fit.threads = 1;  // parallelism is over tasks
      st.label = get_or<std::string>(f, "label",
                                     tname + " " + st.fit.expert.value("family", "?") + " k=" + std::to_string(st.fit.n_experts),
                                     where);
      if (st.fit.init.kind == InitKind::model) {  // load it now, not in every task
        const GaussianMoE im = GaussianMoE::load(st.fit.init.model_path);
        if (im.n_experts() != st.fit.n_experts || im.dim() != truth.dim())
          throw err(where + ".init: model file " + st.fit.init.model_path + " has k = " + std::to_string(im.n_experts()) +
                    ", d = " + std::to_string(im.dim()) + "; the setting needs k = " + std::to_string(st.fit.n_experts) +
                    ", d = " + std::to_string(truth.dim()));
      }
      if (st.fit.n_experts > s.n_grid.front())
        throw err(where + ".k: k = " + std::to_string(st.fit.n_experts) + " experts need n >= k observations; the smallest n is " +
                  std::to_string(s.n_grid.front()));
      if (!labels.insert(st.label).second) throw err(where + ".label: duplicate label '" + st.label + "'");
      st.fit.validate();
      make_gating(st.fit.gating, st.fit.n_experts, truth.dim());
      make_expert_family(st.fit.expert, truth.dim());
      s.settings.push_back(st);
    }
    return s;
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw err(e.what());
  }
}

namespace {

// The fit's certificate follows "seconds" (estimators/certificate.hpp).
const std::vector<std::string> kFixedColumns = {"setting", "n", "rep", "k", "seed", "estimator", "init",
                                                "stop_reason", "iterations", "log_likelihood", "seconds",
                                                "certified", "ll_change", "score_norm", "flags"};

struct TaskId {
  std::size_t n_index, rep, setting;
};

/// Metric names of a setting: from the loss of a near-truth model (the set of
/// names depends only on the truth, k and the families).
std::vector<std::string> metric_names(const Study& s, const StudySetting& st) {
  const GaussianMoE& truth = s.truths[st.truth_index];
  FitOptions fo = st.fit;
  fo.init.kind = InitKind::near_truth;
  fo.init.cycle.clear();
  Rng rng(1);
  const std::size_t m = fo.n_experts;
  arma::mat X(truth.dim(), m, arma::fill::zeros);
  const GaussianMoE probe = initial_model(X, arma::rowvec(m, arma::fill::zeros), fo, rng, &truth);
  const VoronoiLoss L = voronoi_loss(truth, probe, s.voronoi);
  std::vector<std::string> names = {"loss"};
  for (const auto& [k, v] : L.terms) names.push_back(k);
  if (s.distances) names.insert(names.end(), {"hellinger", "tv", "l2"});
  return names;
}

std::string task_key(const std::string& setting, const std::string& n, const std::string& rep) {
  return setting + '\x1f' + n + '\x1f' + rep;
}

void write_sorted(const std::string& path, const std::vector<std::string>& header,
                  std::vector<std::vector<std::string>> rows, const std::vector<std::string>& setting_order) {
  std::map<std::string, std::size_t> order;
  for (std::size_t i = 0; i < setting_order.size(); ++i) order[setting_order[i]] = i;
  auto rank = [&](const std::string& s) { return order.count(s) ? order[s] : order.size(); };
  std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    const auto ra = rank(a[0]), rb = rank(b[0]);
    if (ra != rb) return ra < rb;
    if (a[0] != b[0]) return a[0] < b[0];
    const long long na = std::stoll(a[1]), nb = std::stoll(b[1]);
    if (na != nb) return na < nb;
    return std::stoll(a[2]) < std::stoll(b[2]);
  });
  write_file_atomic(path, csv_table_text(header, rows), /*replaces_input=*/true);
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

}  // namespace

std::vector<std::string> results_header(const Study& s) {
  std::vector<std::string> h = kFixedColumns;
  std::set<std::string> seen;
  for (const auto& st : s.settings)
    for (const auto& m : metric_names(s, st))
      if (seen.insert(m).second) h.push_back("m." + m);
  return h;
}

SweepSummary run_sweep(const Study& s, const std::string& out_csv, const SweepOptions& opt) {
  opt.validate();
  namespace fs = std::filesystem;
  const auto header = results_header(s);
  std::map<std::string, std::size_t> col;
  for (std::size_t c = 0; c < header.size(); ++c) col[header[c]] = c;
  std::vector<std::string> setting_order;
  for (const auto& st : s.settings) setting_order.push_back(st.label);

  // Existing results: everything is checked in memory before the file is
  // touched, so a file that is refused is never modified.
  std::set<std::string> done;
  std::vector<std::vector<std::string>> kept_rows;
  bool exists = false;
  {
    struct stat lst {};
    exists = ::lstat(out_csv.c_str(), &lst) == 0;
  }
  check_output_path(out_csv, {}, /*allow_noted_inputs=*/true);
  if (exists) {
    if (!opt.resume)
      throw InputError(out_csv, 0, 0, "results file exists; use --resume to continue it, or choose another --out");
    std::string text = read_text_file(out_csv);
    const bool partial_tail = !text.empty() && text.back() != '\n';
    if (partial_tail) {  // a run killed mid-write: drop the partial line
      const auto pos = text.find_last_of('\n');
      text = pos == std::string::npos ? std::string() : text.substr(0, pos + 1);
    }
    if (!text.empty()) {
      const CsvTable t = read_csv_table_text(text, out_csv);
      if (t.header != header)
        throw InputError(out_csv, 1, 0, "results file has a different header (another study?); cannot resume it");
      for (std::size_t r = 0; r < t.rows.size(); ++r) {
        const auto& row = t.rows[r];
        if (row[1].empty() || row[1].find_first_not_of("0123456789") != std::string::npos ||
            row[2].empty() || row[2].find_first_not_of("0123456789") != std::string::npos)
          throw InputError(out_csv, r + 2, 2, "columns n and rep must be non-negative integers; got '" + row[1] + "', '" + row[2] + "'; cannot resume this file");
        done.insert(task_key(row[0], row[1], row[2]));
        kept_rows.push_back(row);
      }
    }
    if (partial_tail) write_file_atomic(out_csv, text, /*replaces_input=*/true);
  }
  // Task list (this shard's).
  std::vector<TaskId> tasks;
  std::size_t index = 0, skipped = 0;
  for (std::size_t a = 0; a < s.settings.size(); ++a)
    for (std::size_t ni = 0; ni < s.n_grid.size(); ++ni)
      for (int rep = 0; rep < s.replications; ++rep, ++index) {
        if (index % opt.n_shards != opt.shard) continue;
        if (done.count(task_key(s.settings[a].label, std::to_string(s.n_grid[ni]), std::to_string(rep)))) {
          ++skipped;
          continue;
        }
        tasks.push_back({ni, static_cast<std::size_t>(rep), a});
      }
  // Big tasks first: better load balance; results do not depend on order.
  std::stable_sort(tasks.begin(), tasks.end(), [&](const TaskId& x, const TaskId& y) { return s.n_grid[x.n_index] > s.n_grid[y.n_index]; });

  // Append mode: write the header if the file is new.
  if (!fs::exists(out_csv) || fs::file_size(out_csv) == 0) {
    write_sorted(out_csv, header, {}, setting_order);
  }
  std::FILE* f = std::fopen(out_csv.c_str(), "ab");
  if (!f) throw InputError(out_csv, 0, 0, std::string("cannot open for appending: ") + std::strerror(errno));
  std::atomic<bool> write_failed{false};
  std::string write_error;

  SweepSummary sum;
  sum.tasks_total = index;
  sum.tasks_skipped = skipped;
  const auto t0 = std::chrono::steady_clock::now();
  auto last_print = t0;
  std::mutex mu;
  std::vector<std::vector<std::string>> new_rows;
  double work_done = 0, work_total = 0;
  for (const auto& t : tasks) work_total += double(s.n_grid[t.n_index]);
  std::atomic<bool> cancelled{false};

#ifdef _OPENMP
  const int nthreads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
#endif
  for (std::size_t ti = 0; ti < tasks.size(); ++ti) {
    if (cancelled) continue;  // an OpenMP loop cannot break
    if (write_failed.load()) continue;  // stop at once: the results cannot be saved
    const TaskId t = tasks[ti];
    const StudySetting& st = s.settings[t.setting];
    const GaussianMoE& truth = s.truths[st.truth_index];
    const std::size_t n = s.n_grid[t.n_index];
    const auto ts = std::chrono::steady_clock::now();
    std::vector<std::string> row(header.size(), "");
    row[0] = st.label;
    row[1] = std::to_string(n);
    row[2] = std::to_string(t.rep);
    row[3] = std::to_string(st.fit.n_experts);
    FitOptions fo = st.fit;
    fo.seed = derive_seed(s.seed, {t.n_index, t.rep, t.setting, 1});
    row[4] = std::to_string(fo.seed);
    row[5] = fo.estimator;
    row[6] = fo.init.label();
    fo.em.cancel = opt.cancel;
    bool capped = false, failed = false, uncertified = false;
    try {
      throw_if_cancelled(opt.cancel);
      Rng data_rng(derive_seed(s.seed, {t.n_index, t.rep, st.truth_index}));
      const arma::mat X = draw_design(s.design, truth.dim(), n, data_rng);
      const arma::rowvec y = truth.simulate(X, data_rng);
      const FitResult r = fit(X, y, fo, &truth);
      row[7] = stop_reason_name(r.stop_reason);
      row[8] = std::to_string(r.iterations);
      row[9] = format_double(r.log_likelihood);
      capped = r.stop_reason == StopReason::max_iter;
      row[11] = r.certificate.certified ? "1" : "0";
      row[12] = std::isfinite(r.certificate.ll_change) ? format_double(r.certificate.ll_change) : "";
      row[13] = std::isfinite(r.certificate.score_norm) ? format_double(r.certificate.score_norm) : "";
      row[14] = r.certificate.flags();
      uncertified = !r.certificate.certified;
      const VoronoiLoss L = voronoi_loss(truth, r.model, s.voronoi);
      row[col["m.loss"]] = format_double(L.total);
      for (const auto& [k, v] : L.terms)
        if (col.count("m." + k)) row[col["m." + k]] = format_double(v);
      if (s.distances) {
        const DensityDistances D = density_distances(truth, r.model, s.design, s.distance_mc,
                                                     derive_seed(s.seed, {t.n_index, t.rep, t.setting, 2}));
        row[col["m.hellinger"]] = format_double(D.hellinger);
        row[col["m.tv"]] = format_double(D.tv);
        row[col["m.l2"]] = format_double(D.l2);
      }
    } catch (const Cancelled&) {
      cancelled = true;  // the task is not written: `resume` runs it again
      continue;
    } catch (const std::exception& e) {
      failed = true;
      row[7] = "failed";
      std::lock_guard<std::mutex> lock(mu);
      std::ostringstream m;
      m << "task " << st.label << " n=" << n << " rep=" << t.rep << " failed: " << e.what();
      if (sum.first_errors.size() < 3) sum.first_errors.push_back(m.str());
      std::cerr << "sweep: " << m.str() << "\n";
    }
    row[10] = format_double(std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count());
    std::lock_guard<std::mutex> lock(mu);
    if (write_failed.load()) continue;
    const std::string line = csv_line(row);
    errno = 0;
    if (std::fwrite(line.data(), 1, line.size(), f) != line.size() || std::fflush(f) != 0) {
      write_error = std::string("writing a result failed (") + std::strerror(errno ? errno : EIO) +
                    "); the sweep stops; rerun with --resume when there is space";
      write_failed.store(true);
      continue;
    }
    new_rows.push_back(std::move(row));
    sum.tasks_run++;
    sum.tasks_failed += failed;
    sum.capped += capped;
    sum.uncertified += uncertified;
    work_done += double(n);
    const auto now = std::chrono::steady_clock::now();
    if (opt.progress && (std::chrono::duration<double>(now - last_print).count() >= 2.0 || sum.tasks_run == tasks.size())) {
      last_print = now;
      const double el = std::chrono::duration<double>(now - t0).count();
      const double eta = work_done > 0 ? el * (work_total - work_done) / work_done : -1;
      std::fprintf(stderr, "sweep: %zu/%zu tasks (%.0f%% of the work), %s elapsed, ETA %s, %zu failed, %zu at the iteration cap\n",
                   sum.tasks_run + skipped, sum.tasks_total, 100.0 * work_done / std::max(work_total, 1.0),
                   fmt_duration(el).c_str(), fmt_duration(eta).c_str(), sum.tasks_failed, sum.capped);
    }
  }
  if (std::fclose(f) != 0 && !write_failed.load()) {
    write_error = std::string("closing the results file failed (") + std::strerror(errno) + ")";
    write_failed.store(true);
  }
  if (write_failed.load()) throw InputError(out_csv, 0, 0, write_error);
  // Rewrite sorted (atomically): the same file whatever the thread count.
  kept_rows.insert(kept_rows.end(), new_rows.begin(), new_rows.end());
  write_sorted(out_csv, header, kept_rows, setting_order);
  if (cancelled) throw Cancelled();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

void merge_results(const std::vector<std::string>& inputs, const std::string& out_csv) {
  if (inputs.empty()) throw InvalidArgument("merge: no input files");
  std::vector<std::string> header;
  std::map<std::string, std::vector<std::string>> rows;
  std::vector<std::string> setting_order;
  for (const auto& in : inputs) {
    const CsvTable t = read_csv_table(in);
    if (header.empty()) header = t.header;
    else if (t.header != header) throw InputError(in, 1, 0, "header differs from " + inputs[0] + "'s");
    if (header.size() < kFixedColumns.size() || !std::equal(kFixedColumns.begin(), kFixedColumns.end(), header.begin()))
      throw InputError(in, 1, 1, "not a sweep results file (expected the columns setting,n,rep,k,seed,estimator,init,"
                                 "stop_reason,iterations,log_likelihood,seconds, then metrics)");
    for (std::size_t ri = 0; ri < t.rows.size(); ++ri) {
      const auto& r = t.rows[ri];
      for (std::size_t c = 1; c <= 2; ++c)
        if (r[c].empty() || r[c].find_first_not_of("0123456789") != std::string::npos || r[c].size() > 18)
          throw InputError(in, ri + 2, c + 1, "column " + header[c] + " must be a non-negative integer; got '" + r[c] + "'");
      const auto key = task_key(r[0], r[1], r[2]);
      if (std::find(setting_order.begin(), setting_order.end(), r[0]) == setting_order.end()) setting_order.push_back(r[0]);
      auto it = rows.find(key);
      if (it != rows.end()) {
        // The same task in two shards: allowed only if identical but for wall time.
        auto a = it->second, b = r;
        a[10] = b[10] = "";
        if (a != b) throw InputError(in, 0, 0, "task setting=" + r[0] + " n=" + r[1] + " rep=" + r[2] + " appears twice with different results");
        continue;
      }
      rows.emplace(key, r);
    }
  }
  std::vector<std::vector<std::string>> all;
  for (auto& [k, r] : rows) all.push_back(r);
  write_sorted(out_csv, header, all, setting_order);
}

}  // namespace moerate
