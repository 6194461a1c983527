#include "moerate/studies/scenarios.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <sstream>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/io/files.hpp"

namespace moerate {

namespace {

double num(const json& j, const char* key, double def) {
  if (!j.contains(key)) return def;
  if (!j[key].is_number()) throw InvalidArgument(std::string("scenario data: ") + key + " must be a number; got " + j[key].dump());
  return j[key].get<double>();
}
std::size_t whole(const json& j, const char* key, std::size_t def) {
  const double v = num(j, key, static_cast<double>(def));
  if (!(v >= 1) || v != std::floor(v) || v > 1e6)
    throw InvalidArgument(std::string("scenario data: ") + key + " must be an integer >= 1; got " + j[key].dump());
  return static_cast<std::size_t>(v);
}

/// d x d orthogonal matrix from the structure seed (QR of a Gaussian matrix).
arma::mat basis(std::size_t d, std::uint64_t seed) {
  Rng rng(derive_seed(seed, {0x5eedULL}));
  arma::mat A(d, d);
  for (auto& v : A) v = rng.normal();
  arma::mat Q, R;
  arma::qr(Q, R, A);
  return Q;
}

arma::vec normal_vec(std::size_t d, Rng& rng) {
  arma::vec z(d);
  for (auto& v : z) v = rng.normal();
  return z;
}

double he3(double z) { return (z * z * z - 3 * z) / std::sqrt(6.0); }

/// Draw n_total observations; the first n are the training sample.
struct Draw {
  arma::mat X;
  arma::rowvec y, f;
  arma::uvec cluster;
};

Draw draw_latent_clusters(const json& s, std::size_t N, Rng& rng, arma::mat& directions) {
  const std::size_t C = whole(s, "C", 2), d = whole(s, "d", 8);
  if (d < 2 * C + 1) throw InvalidArgument("latent-clusters: need d >= 2 C + 1 (orthonormal v_c, w_c, w_g)");
  const double rho = num(s, "rho", 3), sc = num(s, "s", 0.5), sigma = num(s, "noise", 0.1);
  const arma::mat B = basis(d, static_cast<std::uint64_t>(num(s, "structure_seed", 1)));
  directions = B.cols(C, 2 * C - 1);
  const arma::vec wg = B.col(2 * C);
  Draw D{arma::mat(d, N), arma::rowvec(N), arma::rowvec(N), arma::uvec(N)};
  for (std::size_t i = 0; i < N; ++i) {
    const std::size_t c = rng.integer(0, C - 1);
    const arma::vec x = rho * B.col(c) + normal_vec(d, rng);
    const double s_c = sc * std::cos(2 * M_PI * double(c + 1) / double(C));
    D.X.col(i) = x;
    D.f[i] = he3(arma::dot(directions.col(c), x)) + s_c * he3(arma::dot(wg, x));
    D.y[i] = D.f[i] + sigma * rng.normal();
    D.cluster[i] = c;
  }
  return D;
}

Draw draw_cluster_centres(const json& s, std::size_t N, Rng& rng, arma::mat& centres) {
  const std::size_t K = whole(s, "K", 4), d = whole(s, "d", 16);
  if (K < 2 || d < 2 * K) throw InvalidArgument("cluster-centres: need K >= 2 and d >= 2 K (orthonormal v_k, c_k)");
  const double sigma = num(s, "noise", 0.5);
  const arma::mat B = basis(d, static_cast<std::uint64_t>(num(s, "structure_seed", 1)));
  centres = B.cols(K, 2 * K - 1);
  Draw D{arma::mat(d, N), arma::rowvec(N), arma::rowvec(N), arma::uvec(N)};
  for (std::size_t i = 0; i < N; ++i) {
    const double ys = rng.uniform() < 0.5 ? -1.0 : 1.0, eps = rng.uniform() < 0.5 ? -1.0 : 1.0;
    const std::size_t k = rng.integer(0, K - 1);
    std::size_t k2 = rng.integer(0, K - 2);
    if (k2 >= k) ++k2;
    const double alpha = 0.5 + 1.5 * rng.uniform(), beta = 1 + rng.uniform(), gamma = 0.5 + 1.5 * rng.uniform();
    D.X.col(i) = alpha * ys * B.col(k) + beta * centres.col(k) + gamma * eps * B.col(k2) + sigma * normal_vec(d, rng);
    D.y[i] = (ys + 1) / 2;
    D.f[i] = D.y[i];
    D.cluster[i] = k;
  }
  return D;
}

Draw draw_manifold(const json& s, std::size_t N, Rng& rng) {
  const std::size_t m = whole(s, "m", 1), Dm = whole(s, "D", 8);
  if (Dm % (2 * m) != 0) throw InvalidArgument("manifold: D must be a multiple of 2 m (the embedding's coordinates)");
  const double sigma = num(s, "noise", 0.05);
  const std::size_t J = Dm / (2 * m);  // frequencies per manifold coordinate
  const arma::mat Q = basis(Dm, static_cast<std::uint64_t>(num(s, "structure_seed", 1)));
  Draw D{arma::mat(Dm, N), arma::rowvec(N), arma::rowvec(N), arma::uvec()};
  arma::vec phi(Dm);
  for (std::size_t i = 0; i < N; ++i) {
    arma::vec t(m);
    for (auto& v : t) v = rng.uniform();
    // A curved embedding that spans R^D (no affine subspace holds it):
    // (cos(pi j t_u) / j, sin(pi j t_u) / j) for j = 1..J, rotated by Q.
    for (std::size_t u = 0; u < m; ++u)
      for (std::size_t j = 1; j <= J; ++j) {
        const std::size_t o = 2 * (u * J + j - 1);
        phi[o] = std::cos(M_PI * double(j) * t[u]) / double(j);
        phi[o + 1] = std::sin(M_PI * double(j) * t[u]) / double(j);
      }
    D.X.col(i) = Q * phi;
    double f = std::sin(2 * M_PI * t[0]);
    for (std::size_t u = 1; u < m; ++u) f *= std::cos(M_PI * t[u]);
    f += t[0] > 0.6 ? 1.0 : 0.0;
    D.f[i] = f;
    D.y[i] = f + sigma * rng.normal();
  }
  return D;
}

Draw draw_product(const json& s, std::size_t N, Rng& rng) {
  const std::size_t E = whole(s, "E", 3);
  const double sigma = num(s, "noise", 0.05);
  Rng rs(derive_seed(static_cast<std::uint64_t>(num(s, "structure_seed", 1)), {0xcafeULL}));
  arma::mat P(2, E), Qc(2, E);  // rows: slope, intercept of p_i and q_j
  for (std::size_t i = 0; i < E; ++i) {
    P(0, i) = 2 * rs.normal(), P(1, i) = 2 * rs.uniform() - 1;
    Qc(0, i) = 2 * rs.normal(), Qc(1, i) = 2 * rs.uniform() - 1;
  }
  Draw D{arma::mat(2, N), arma::rowvec(N), arma::rowvec(N), arma::uvec()};
  auto cell = [&](double x) { return std::min<std::size_t>(E - 1, static_cast<std::size_t>((x + 1) / 2 * double(E))); };
  for (std::size_t i = 0; i < N; ++i) {
    const double x1 = 2 * rng.uniform() - 1, x2 = 2 * rng.uniform() - 1;
    const std::size_t a = cell(x1), b = cell(x2);
    D.X(0, i) = x1, D.X(1, i) = x2;
    D.f[i] = P(0, a) * x1 + P(1, a) + Qc(0, b) * x2 + Qc(1, b);
    D.y[i] = D.f[i] + sigma * rng.normal();
  }
  return D;
}

}  // namespace

ScenarioData scenario_data(const json& spec, std::size_t n, std::size_t n_test, Rng& rng) {
  if (!spec.is_object() || !spec.contains("model") || !spec["model"].is_string())
    throw InvalidArgument("scenario data: expected an object with a string \"model\"; got " + spec.dump());
  const std::string model = spec["model"];
  ScenarioData out;
  Draw D;
  const std::size_t N = n + n_test;
  if (model == "latent-clusters") D = draw_latent_clusters(spec, N, rng, out.directions);
  else if (model == "cluster-centres") D = draw_cluster_centres(spec, N, rng, out.centres), out.binary = true;
  else if (model == "manifold") D = draw_manifold(spec, N, rng);
  else if (model == "product") D = draw_product(spec, N, rng);
  else
    throw InvalidArgument("scenario data: unknown model '" + model +
                          "'; known: latent-clusters, cluster-centres, manifold, product");
  out.X = D.X.cols(0, n - 1);
  out.y = D.y.cols(0, n - 1);
  if (n_test > 0) {
    out.X_test = D.X.cols(n, N - 1);
    out.y_test = D.y.cols(n, N - 1);
    out.f_test = D.f.cols(n, N - 1);
    if (!D.cluster.is_empty()) out.cluster_test = D.cluster.subvec(n, N - 1);
  }
  return out;
}

namespace {

/// First-layer weight vectors of expert j: the blocks of length d named a or w<m>.
std::vector<arma::vec> first_layer(const GaussianMoE& m, std::size_t j) {
  std::vector<arma::vec> out;
  const arma::vec eta = m.eta().col(j);
  for (const auto& b : m.experts().blocks())
    if (b.size == m.dim() && (b.name == "a" || b.name[0] == 'w')) out.push_back(eta.subvec(b.offset, b.offset + b.size - 1));
  return out;
}

double min_over_matchings(const arma::mat& cost) {  // k x k, k <= 8
  const std::size_t k = cost.n_rows;
  std::vector<std::size_t> p(k);
  std::iota(p.begin(), p.end(), 0);
  double best = kInf;
  do {
    double c = 0;
    for (std::size_t j = 0; j < k; ++j) c += cost(p[j], j);
    best = std::min(best, c);
  } while (std::next_permutation(p.begin(), p.end()));
  return best;
}

}  // namespace

std::map<std::string, double> scenario_metrics(const ScenarioData& D, const GaussianMoE& fit) {
  std::map<std::string, double> out;
  const double nan = arma::datum::nan;
  const arma::rowvec pred = fit.regression_function(D.X_test);
  if (D.binary) {
    double wrong = 0;
    for (std::size_t i = 0; i < pred.n_elem; ++i) wrong += (pred[i] > 0.5 ? 1.0 : 0.0) != D.y_test[i];
    out["test_error"] = wrong / double(pred.n_elem);
  } else {
    const double mse = arma::mean(arma::square(pred - D.f_test));
    out["test_mse"] = mse;
    out["test_rmse"] = std::sqrt(mse);
  }
  if (!D.directions.is_empty()) {
    const std::size_t C = D.directions.n_cols, k = fit.n_experts();
    const arma::mat P = arma::exp(fit.log_weights(D.X_test));
    double total = 0;
    for (std::size_t c = 0; c < C; ++c) {
      arma::vec mass(k, arma::fill::zeros);
      for (std::size_t i = 0; i < D.cluster_test.n_elem; ++i)
        if (D.cluster_test[i] == c) mass += P.col(i);
      const std::size_t j = mass.index_max();
      double best = 0;
      for (const auto& a : first_layer(fit, j)) {
        const double na = arma::norm(a);
        if (na > 0) best = std::max(best, std::abs(arma::dot(a, D.directions.col(c))) / na);
      }
      total += best;
    }
    out["cosine"] = total / double(C);
  }
  if (!D.cluster_test.is_empty()) {
    // Routing accuracy: the share of test points whose most weighted expert is
    // their cluster's expert, under the best matching of experts to clusters.
    const std::size_t K = D.cluster_test.max() + 1, k = fit.n_experts();
    double acc = nan;
    if (k == K && k <= 8) {
      const arma::mat L = fit.log_weights(D.X_test);
      arma::mat agree(k, K, arma::fill::zeros);
      for (std::size_t i = 0; i < D.cluster_test.n_elem; ++i) agree(L.col(i).index_max(), D.cluster_test[i]) += 1;
      acc = -min_over_matchings(-agree) / double(D.cluster_test.n_elem);
    }
    out["routing_accuracy"] = acc;
  }
  if (!D.centres.is_empty()) {
    const std::size_t K = D.centres.n_cols, k = fit.n_experts();
    double dist = nan;
    if (k == K && k <= 8 && fit.gating().location_name() == "beta1") {
      arma::mat G(fit.dim(), k);
      for (std::size_t j = 0; j < k; ++j) G.col(j) = fit.gating().atom_location(j);
      arma::mat Cc = D.centres;
      G.each_col() -= arma::mean(G, 1);
      Cc.each_col() -= arma::mean(Cc, 1);
      const double ng = arma::norm(G, "fro"), nc = arma::norm(Cc, "fro");
      if (ng > 0 && nc > 0) {
        G /= ng;
        Cc /= nc;
        arma::mat cost(k, K);
        for (std::size_t j = 0; j < k; ++j)
          for (std::size_t c = 0; c < K; ++c) cost(j, c) = arma::accu(arma::square(G.col(j) - Cc.col(c)));
        dist = std::sqrt(min_over_matchings(cost));
      }
    }
    out["centre_distance"] = dist;
  }
  return out;
}

// ---------------------------------------------------------------------------
// The built-in scenario studies.

bool is_scenario_study(const std::string& name) {
  return name == "latent-clusters" || name == "cluster-centres" || name == "expressive-power";
}

namespace {

FitOptions fit_options(std::size_t k, const json& expert, const json& gating, ModelKind response, int starts,
                       int max_iter) {
  FitOptions f;
  f.n_experts = k;
  f.expert = expert;
  f.gating = gating;
  f.response = response;
  f.n_starts = starts;
  f.em.max_iter = max_iter;
  f.threads = 1;  // parallelism is over tasks
  return f;
}

}  // namespace

ScenarioStudy scenario_study(const std::string& name, const std::string& scale) {
  if (scale != "smoke" && scale != "quick" && scale != "paper")
    throw InvalidArgument("--scale: scenario studies have scales quick and paper (and smoke, for tests); got '" + scale + "'");
  const bool paper = scale == "paper", smoke = scale == "smoke";
  ScenarioStudy s;
  s.name = name;
  s.scale = scale;
  s.seed = 20251201;
  const json softmax = {{"family", "softmax"}};
  const json linear = {{"family", "linear"}};
  auto ffn = [](int units) { return json{{"family", "ffn"}, {"activation", "tanh"}, {"units", units}}; };
  const int starts = paper ? 4 : 2, max_iter = paper ? 2000 : (smoke ? 30 : 200);
  if (name == "latent-clusters") {
    // C = 2 clusters in d = 8; an MoE of two 4-unit experts against one 8-unit expert.
    s.data = {json{{"model", "latent-clusters"}, {"C", 2}, {"d", 8}, {"rho", 3}, {"s", 0.5}, {"noise", 0.1},
                   {"structure_seed", 11}}};
    s.n_grid = paper ? log_grid(200, 20000, 8) : smoke ? std::vector<std::size_t>{100} : std::vector<std::size_t>{250, 500, 1000, 2000};
    s.replications = paper ? 20 : (smoke ? 1 : 3);
    s.n_test = smoke ? 200 : 2000;
    s.metrics = {"test_mse", "cosine", "routing_accuracy"};
    s.settings.push_back({"MoE k=2 (4 units each)", "MoE k=2 (4 units each)", "latent-clusters", "n", 0, {},
                          fit_options(2, ffn(4), softmax, ModelKind::gaussian, starts, max_iter)});
    s.settings.push_back({"one expert (8 units)", "one expert (8 units)", "latent-clusters", "n", 0, {},
                          fit_options(1, ffn(8), softmax, ModelKind::gaussian, starts, max_iter)});
  } else if (name == "cluster-centres") {
    s.data = {json{{"model", "cluster-centres"}, {"K", 4}, {"d", 16}, {"noise", 0.25}, {"structure_seed", 5}}};
    s.n_grid = paper ? log_grid(200, 20000, 8) : smoke ? std::vector<std::size_t>{120} : std::vector<std::size_t>{200, 400, 800, 1600};
    s.replications = paper ? 20 : (smoke ? 1 : 3);
    s.n_test = smoke ? 200 : 4000;
    s.metrics = {"test_error", "centre_distance", "routing_accuracy"};
    for (const auto& [label, k, ex] :
         std::vector<std::tuple<std::string, std::size_t, json>>{{"MoE k=4 linear", 4, linear},
                                                                 {"MoE k=4 ffn (2 tanh units)", 4, ffn(2)},
                                                                 {"one linear expert", 1, linear}})
      s.settings.push_back({label, label, "cluster-centres", "n", 0, {},
                            fit_options(k, ex, softmax, ModelKind::bernoulli, starts, max_iter)});
  } else if (name == "expressive-power") {
    // (a) approximation error against k on a manifold of dimension m in R^D.
    s.data = {json{{"model", "manifold"}, {"m", 1}, {"D", 2}, {"noise", 0.05}, {"structure_seed", 3}},
              json{{"model", "manifold"}, {"m", 1}, {"D", 8}, {"noise", 0.05}, {"structure_seed", 3}},
              json{{"model", "manifold"}, {"m", 2}, {"D", 8}, {"noise", 0.05}, {"structure_seed", 3}},
              json{{"model", "product"}, {"E", 3}, {"noise", 0.05}, {"structure_seed", 9}}};
    const std::vector<std::size_t> ks = paper ? std::vector<std::size_t>{2, 3, 4, 6, 8, 12, 16}
                                      : smoke ? std::vector<std::size_t>{2} : std::vector<std::size_t>{2, 4, 8};
    const std::size_t n_manifold = paper ? 20000 : (smoke ? 100 : 1500);
    const std::vector<std::string> series = {"m=1 D=2", "m=1 D=8", "m=2 D=8"};
    for (std::size_t di = 0; di < (smoke ? 1u : 3u); ++di)
      for (std::size_t k : ks) {
        const std::string label = series[di] + " k=" + std::to_string(k);
        s.settings.push_back({label, series[di], "manifold", "k", di, {n_manifold},
                              fit_options(k, linear, softmax, ModelKind::gaussian, starts, max_iter)});
      }
    // (b) E x E hierarchical gate against a flat gate with E^2 experts, product target.
    s.n_grid = paper ? log_grid(500, 20000, 6) : smoke ? std::vector<std::size_t>{100} : std::vector<std::size_t>{400, 800, 1600};
    s.settings.push_back({"flat softmax k=9", "flat softmax k=9", "product", "n", 3, {},
                          fit_options(9, linear, softmax, ModelKind::gaussian, starts, max_iter)});
    s.settings.push_back({"hierarchical 3x3", "hierarchical 3x3", "product", "n", 3, {},
                          fit_options(9, linear,
                                      json{{"family", "hierarchical"}, {"outer", "softmax"}, {"inner", "softmax"}, {"groups", 3}},
                                      ModelKind::gaussian, starts, max_iter)});
    s.replications = paper ? 20 : (smoke ? 1 : 2);
    s.n_test = smoke ? 200 : 4000;
    s.metrics = {"test_rmse"};
  } else {
    throw InvalidArgument("unknown scenario study '" + name + "'");
  }
  for (const auto& st : s.settings) st.fit.validate();
  return s;
}

json ScenarioStudy::to_json() const {
  json j;
  j["name"] = name;
  j["scale"] = scale;
  j["kind"] = "scenario";
  j["seed"] = seed;
  j["data"] = data;
  j["n"] = n_grid;
  j["replications"] = replications;
  j["n_test"] = n_test;
  j["metrics"] = metrics;
  json st = json::array();
  for (const auto& x : settings)
    st.push_back({{"label", x.label}, {"series", x.series}, {"panel", x.panel}, {"x_axis", x.x_axis},
                  {"data", x.data_index}, {"n", setting_sizes(*this, x)}, {"k", x.fit.n_experts},
                  {"expert", x.fit.expert}, {"gating", x.fit.gating}, {"response", model_kind_name(x.fit.response)},
                  {"starts", x.fit.n_starts}, {"max_iter", x.fit.em.max_iter}, {"estimator", x.fit.estimator}});
  j["settings"] = st;
  return j;
}

const std::vector<std::size_t>& setting_sizes(const ScenarioStudy& s, const ScenarioSetting& st) {
  return st.n_values.empty() ? s.n_grid : st.n_values;
}

// ---------------------------------------------------------------------------
// Running.

namespace {

const std::vector<std::string> kFixed = {"setting", "n", "rep", "k", "seed", "estimator", "init",
                                         "stop_reason", "iterations", "log_likelihood", "seconds",
                                         "certified", "ll_change", "score_norm", "flags"};

std::string key_of(const std::string& setting, const std::string& n, const std::string& rep) {
  return setting + '\x1f' + n + '\x1f' + rep;
}

}  // namespace

SweepSummary run_scenario_study(const ScenarioStudy& s, const std::string& out_csv, const SweepOptions& opt) {
  opt.validate();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> header = kFixed;
  for (const auto& m : s.metrics) header.push_back("m." + m);
  struct Task {
    std::size_t setting, n, rep;
  };
  std::set<std::string> done;
  std::vector<std::vector<std::string>> rows;
  if (std::filesystem::exists(out_csv)) {
    if (!opt.resume)
      throw InputError(out_csv, 0, 0, "results file exists; use --resume to continue it, or choose another --out");
    const CsvTable t = read_csv_table(out_csv);
    if (t.header != header) throw InputError(out_csv, 1, 0, "results file has a different header (another study?)");
    for (const auto& r : t.rows) {
      done.insert(key_of(r[0], r[1], r[2]));
      rows.push_back(r);
    }
  }
  std::vector<Task> tasks;
  SweepSummary sum;
  for (std::size_t a = 0; a < s.settings.size(); ++a)
    for (std::size_t n : setting_sizes(s, s.settings[a]))
      for (int rep = 0; rep < s.replications; ++rep) {
        sum.tasks_total++;
        if (done.count(key_of(s.settings[a].label, std::to_string(n), std::to_string(rep)))) {
          sum.tasks_skipped++;
          continue;
        }
        tasks.push_back({a, n, static_cast<std::size_t>(rep)});
      }
  // Big tasks first (load balance); results do not depend on the order.
  std::stable_sort(tasks.begin(), tasks.end(), [&](const Task& x, const Task& y) {
    return x.n * s.settings[x.setting].fit.n_experts > y.n * s.settings[y.setting].fit.n_experts;
  });
  std::vector<std::vector<std::string>> new_rows(tasks.size());
  std::vector<std::string> errors(tasks.size());
  std::atomic<std::size_t> finished{0};
  std::atomic<bool> cancelled{false};
  std::mutex io;
#ifdef _OPENMP
  const int nthreads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic) num_threads(nthreads)
#endif
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    if (cancelled) continue;
    const Task& tk = tasks[t];
    const ScenarioSetting& st = s.settings[tk.setting];
    const auto ts = std::chrono::steady_clock::now();
    std::vector<std::string> row(header.size());
    row[0] = st.label, row[1] = std::to_string(tk.n), row[2] = std::to_string(tk.rep);
    row[3] = std::to_string(st.fit.n_experts);
    const std::uint64_t fit_seed = derive_seed(s.seed, {tk.n, tk.rep, tk.setting, 1});
    row[4] = std::to_string(fit_seed);
    row[5] = st.fit.estimator;
    row[6] = st.fit.init.label();
    try {
      throw_if_cancelled(opt.cancel);
      Rng rng(derive_seed(s.seed, {tk.n, tk.rep, st.data_index}));
      const ScenarioData D = scenario_data(s.data[st.data_index], tk.n, s.n_test, rng);
      FitOptions fo = st.fit;
      fo.seed = fit_seed;
      fo.em.cancel = opt.cancel;
      const FitResult r = fit(D.X, D.y, fo);
      const auto m = scenario_metrics(D, r.model);
      row[7] = stop_reason_name(r.stop_reason);
      row[8] = std::to_string(r.iterations);
      row[9] = format_double(r.log_likelihood);
      row[11] = r.certificate.certified ? "1" : "0";
      row[12] = format_double(r.certificate.ll_change);
      row[13] = format_double(r.certificate.score_norm);
      row[14] = r.certificate.flags();
      for (std::size_t i = 0; i < s.metrics.size(); ++i) {
        const auto it = m.find(s.metrics[i]);
        row[kFixed.size() + i] = it == m.end() ? "nan" : format_double(it->second);
      }
    } catch (const Cancelled&) {
      cancelled = true;
      continue;
    } catch (const std::exception& e) {
      errors[t] = st.label + " n=" + std::to_string(tk.n) + " rep=" + std::to_string(tk.rep) + ": " + e.what();
      row[7] = "failed";
      for (std::size_t i = 0; i < s.metrics.size(); ++i) row[kFixed.size() + i] = "nan";
    }
    row[10] = format_double(std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count());
    new_rows[t] = std::move(row);
    const std::size_t f = ++finished;
    if (opt.progress) {
      std::lock_guard<std::mutex> lock(io);
      std::cerr << "\r" << f << "/" << tasks.size() << " fits" << std::flush;
    }
  }
  if (opt.progress && !tasks.empty()) std::cerr << "\n";
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    if (new_rows[t].empty()) continue;
    sum.tasks_run++;
    if (!errors[t].empty()) {
      sum.tasks_failed++;
      if (sum.first_errors.size() < 5) sum.first_errors.push_back(errors[t]);
    } else {
      if (new_rows[t][7] == "max_iter") sum.capped++;
      if (new_rows[t][11] != "1") sum.uncertified++;
    }
    rows.push_back(std::move(new_rows[t]));
  }
  // Sorted: settings in study order, then n, then rep.
  std::map<std::string, std::size_t> order;
  for (std::size_t a = 0; a < s.settings.size(); ++a) order[s.settings[a].label] = a;
  std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    const auto ra = order.count(a[0]) ? order[a[0]] : order.size(), rb = order.count(b[0]) ? order[b[0]] : order.size();
    if (ra != rb) return ra < rb;
    const long long na = std::stoll(a[1]), nb = std::stoll(b[1]);
    if (na != nb) return na < nb;
    return std::stoll(a[2]) < std::stoll(b[2]);
  });
  write_file_atomic(out_csv, csv_table_text(header, rows), /*replaces_input=*/true);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (cancelled) throw Cancelled();
  return sum;
}

// ---------------------------------------------------------------------------
// Summaries.

std::vector<ScenarioCell> scenario_cells(const ScenarioStudy& s, const CsvTable& results, int bootstrap, double level,
                                         std::uint64_t seed) {
  std::vector<ScenarioCell> out;
  const std::size_t cs = results.column("setting"), cn = results.column("n");
  for (std::size_t a = 0; a < s.settings.size(); ++a) {
    const auto& st = s.settings[a];
    for (std::size_t mi = 0; mi < s.metrics.size(); ++mi) {
      const std::string& m = s.metrics[mi];
      const std::size_t cm = results.column("m." + m);
      for (std::size_t n : setting_sizes(s, st)) {
        std::vector<double> v;
        for (const auto& r : results.rows) {
          if (r[cs] != st.label || r[cn] != std::to_string(n)) continue;
          const double x = std::strtod(r[cm].c_str(), nullptr);
          if (std::isfinite(x)) v.push_back(x);
        }
        ScenarioCell c;
        c.setting = st.label, c.metric = m, c.n = double(n), c.k = double(st.fit.n_experts);
        c.reps = static_cast<int>(v.size());
        if (v.empty()) {
          c.mean = c.ci_low = c.ci_high = c.median = arma::datum::nan;
          out.push_back(c);
          continue;
        }
        c.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
        c.median = quantile(v, 0.5);
        c.ci_low = c.ci_high = c.mean;
        if (bootstrap > 0 && v.size() > 1) {
          Rng rng(derive_seed(seed, {a, n, mi}));
          std::vector<double> means(bootstrap);
          for (int b = 0; b < bootstrap; ++b) {
            double acc = 0;
            for (std::size_t i = 0; i < v.size(); ++i) acc += v[rng.integer(0, v.size() - 1)];
            means[b] = acc / double(v.size());
          }
          c.ci_low = quantile(means, (1 - level) / 2);
          c.ci_high = quantile(means, 1 - (1 - level) / 2);
        }
        out.push_back(c);
      }
    }
  }
  return out;
}

LossTable scenario_series_table(const ScenarioStudy& s, const CsvTable& results, const std::string& series,
                                const std::string& metric) {
  LossTable t;
  const std::size_t cs = results.column("setting"), cn = results.column("n"), cr = results.column("rep");
  const std::size_t cm = results.column("m." + metric);
  for (const auto& st : s.settings) {
    if (st.series != series) continue;
    for (const auto& r : results.rows) {
      if (r[cs] != st.label) continue;
      const double x = std::strtod(r[cm].c_str(), nullptr);
      if (!std::isfinite(x)) continue;
      t.n.push_back(st.x_axis == "k" ? double(st.fit.n_experts) : std::strtod(r[cn].c_str(), nullptr));
      t.rep.push_back(std::atoi(r[cr].c_str()));
      t.loss.push_back(x);
    }
  }
  return t;
}

}  // namespace moerate
