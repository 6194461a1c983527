#include "cli_common.hpp"

#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/io/csv.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>
#include <iostream>

#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/io/files.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

extern "C" void openblas_set_num_threads(int);
// OpenBLAS's pthread build starts its thread pool when the library loads (one
// thread per further core), and the idle threads spin on sched_yield for about
// 0.1 s before sleeping: `fit --threads 1` at n = 1e4, d = 8 used 1.8 CPUs
// (224 ms CPU for 124 ms wall; 122 ms with OPENBLAS_NUM_THREADS=1). Shutting
// the pool down after setting one BLAS thread removes that; OpenBLAS restarts
// it by itself if a later call ever asks for threads. Weak: absent in other
// OpenBLAS builds (then nothing is called).
extern "C" int blas_thread_shutdown_(void) __attribute__((weak));

namespace moerate::cli {

void single_threaded_blas() {
  openblas_set_num_threads(1);
  if (blas_thread_shutdown_ != nullptr) blas_thread_shutdown_();
}

int configure_threads(int threads) {
  if (threads < 0) throw UsageError("--threads: must be >= 0 (0 = all cores); got " + std::to_string(threads));
  if (threads > kMaxThreads) {
    std::cerr << "moerate: note: --threads " << threads << " capped at " << kMaxThreads << "\n";
    threads = kMaxThreads;
  }
  // Parallelism is at the level of starts, tasks and bootstrap replicates
  // (OpenMP); BLAS runs single-threaded so that results do not depend on the
  // thread count and threads are not oversubscribed.
  single_threaded_blas();
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#endif
  return threads;
}

void check_out(const std::string& out, const std::vector<std::string>& inputs, const std::string& option) {
  // A refused output is a runtime error (exit 1) like any other file problem.
  if (out.empty()) throw UsageError(option + ": the file name is empty");
  moerate::check_output_path(out, inputs);
}

void check_range(const std::string& option, double value, double lo, double hi) {
  if (!std::isfinite(value)) throw UsageError(option + ": must be a finite number; got " + moerate::to_text(value));
  if (value < lo || value > hi)
    throw UsageError(option + ": must be between " + moerate::to_text(lo) + " and " + moerate::to_text(hi) + "; got " +
                     moerate::to_text(value));
}

CLI::Validator whole(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        long long v = 0;
        const char* b = text.data();
        const char* e = b + text.size();
        if (b != e && *b == '+') ++b;
        const auto r = std::from_chars(b, e, v);
        if (text.empty() || r.ec != std::errc() || r.ptr != e || v < lo || v > hi)
          return "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " (a whole number); got '" +
                 text + "'";
        return std::string();
      },
      "INT", "whole number");
}

CLI::Option* add_seed_option(CLI::App* cmd, std::uint64_t& seed, const std::string& help) {
  auto* opt = cmd->add_option_function<std::string>(
      "--seed",
      [&seed](const std::string& text) {
        std::uint64_t v = 0;
        const char* b = text.data();
        const char* e = b + text.size();
        const auto r = std::from_chars(b, e, v);
        if (text.empty() || r.ec != std::errc() || r.ptr != e)
          throw UsageError("--seed: must be an integer between 0 and 18446744073709551615; got '" + text + "'");
        seed = v;
      },
      help);
  opt->default_str(std::to_string(seed));
  opt->allow_extra_args(false);
  return opt;
}

}  // namespace moerate::cli

namespace moerate::cli {

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& c : v) s += (s.empty() ? "" : ",") + c;
  return s;
}

}  // namespace

void add_em_options(CLI::App* cmd, EmCliOptions& o) {
  cmd->add_option("--max-iter", o.max_iter, "Cap on EM steps (M-steps; a SQUAREM cycle counts 3)")->capture_default_str()
      ->check(whole(1, 100000000));
  cmd->add_option("--abs-tol", o.abs_tol, "Converged when |change of the log-likelihood| is below this (nats) ...")
      ->capture_default_str();
  cmd->add_option("--score-tol", o.score_tol,
                  "... and the score statistic (remaining Newton step, in standard errors) is below this")
      ->capture_default_str();
  cmd->add_option("--tol", o.tol,
                  "Also stop on the literature's relative rule |dl| < tol |l| (e.g. 1e-6; 0 = off; loosens with n)")
      ->capture_default_str();
  cmd->add_option("--accelerate", o.accelerate,
                  "EM acceleration: squarem-newton (SQUAREM, Newton steps where EM crawls) | squarem | none")
      ->capture_default_str();
  cmd->add_option("--ridge", o.ridge, "L2 penalty on gate parameters (keeps gates finite in over-fitted fits)")
      ->capture_default_str();
  cmd->add_option("--variance-floor", o.variance_floor, "Variance floor, relative to var(y)")->capture_default_str();
  cmd->add_option("--gate-steps", o.gate_steps,
                  "Steps at most per gate M-step; 0 = the family's default: 1 Newton step for softmax-type gates (a "
                  "generalised EM: the fixed points are the same, each EM step is cheaper), 20 L-BFGS iterations for the "
                  "others")
      ->capture_default_str();
  cmd->add_option("--polish-every", o.polish_every,
                  "squarem-newton: Newton polish first after this many EM steps, then every this many (doubling "
                  "while a polish gains nothing); 30 reproduces fits made before round 16")
      ->capture_default_str();
}

CLI::Option* add_prune_option(CLI::App* cmd, double& prune_factor) {
  return cmd
      ->add_option("--prune-factor", prune_factor,
                   "EM with several starts: stop a start at a checkpoint (EM steps " + std::to_string(kFirstCheckpoint) +
                       ", " + std::to_string(2 * kFirstCheckpoint) + ", " + std::to_string(4 * kFirstCheckpoint) +
                       ", ...) when it trails the best start by more than " + format_double(kPruneMinGap) +
                       " nats and by more than this times its gain since the last checkpoint (stop reason dominated; "
                       "the other starts' numbers are unchanged); 0 = run every start to its end")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e300));
}

void apply_em_options(const EmCliOptions& o, EMOptions& em) {
  check_range("--max-iter", o.max_iter, 1, 100000000);
  check_range("--tol", o.tol, 0, 1);
  check_range("--abs-tol", o.abs_tol, 0, 1e300);
  check_range("--score-tol", o.score_tol, 0, 1e300);
  check_range("--ridge", o.ridge, 0, 1e12);
  check_range("--variance-floor", o.variance_floor, 0, 1e6);
  check_range("--gate-steps", o.gate_steps, 0, 1000);
  check_range("--polish-every", o.polish_every, 1, 100000000);
  em.max_iter = o.max_iter;
  em.tol = o.tol;
  em.abs_tol = o.abs_tol;
  em.score_tol = o.score_tol;
  em.gate.ridge = o.ridge;
  em.variance_floor = o.variance_floor;
  em.gate.max_steps = o.gate_steps;
  em.polish_every = o.polish_every;
  try {
    em.accelerate = parse_acceleration(o.accelerate);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
}

CLI::Option* add_gate_x_option(CLI::App* cmd, std::vector<std::string>& gate_x) {
  return cmd->add_option("--gate-x", gate_x,
                         "Gate covariate columns (default: the --x columns); the experts read --x, the gate these")
      ->delimiter(',')
      ->allow_extra_args(false);
}

DesignData read_design_data(const std::string& data_path, const std::vector<std::string>& x, bool gate_x_given,
                            const std::vector<std::string>& gate_x, const std::string& y) {
  if (gate_x_given) {
    if (gate_x.empty()) throw UsageError("--gate-x: expected column names separated by commas; got nothing");
    for (const auto& c : gate_x)
      if (c.empty()) throw UsageError("--gate-x: an empty column name in '" + joined(gate_x) + "'");
    for (std::size_t i = 0; i < gate_x.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (gate_x[i] == gate_x[j]) throw UsageError("--gate-x: column '" + gate_x[i] + "' is given twice");
    const std::string yname = y.empty() ? "y" : y;
    for (const auto& c : gate_x)
      if (c == yname) throw UsageError("--gate-x: column '" + c + "' is the response");
  }
  CsvReadOptions ro;
  if (!y.empty()) ro.y_column = y;
  std::vector<std::string> gate_only;
  if (!x.empty()) {
    std::vector<std::string> cols = x;
    if (gate_x_given)
      for (const auto& c : gate_x)
        if (std::find(x.begin(), x.end(), c) == x.end()) gate_only.push_back(c), cols.push_back(c);
    ro.x_columns = cols;
  }
  DesignData out;
  try {
    out.data = read_csv(data_path, ro);
  } catch (const InputError&) {
    // A --gate-x column that is not in the file: say so with the option's name.
    if (!gate_only.empty()) {
      const auto t = read_csv_table(data_path);
      for (const auto& c : gate_only)
        if (!t.has_column(c))
          throw std::runtime_error(data_path + ": --gate-x: no column '" + c + "' in the header");
    }
    throw;
  }
  const Dataset& D = out.data;
  out.x_columns = x.empty() ? D.x_names : x;
  out.gate_x_columns = gate_x_given ? gate_x : out.x_columns;
  if (gate_x_given && x.empty())  // experts on every column but y: the gate columns must be among them
    for (const auto& c : gate_x)
      if (std::find(D.x_names.begin(), D.x_names.end(), c) == D.x_names.end())
        throw std::runtime_error(data_path + ": --gate-x: no column '" + c + "' in the header");
  try {
    out.covariates = Covariates::from_names(out.x_columns, out.gate_x_columns);
  } catch (const std::exception& e) {
    throw UsageError(std::string("--x/--gate-x: ") + e.what());
  }
  return out;
}

Dataset read_data_for_model(const json_t& model_file, const std::string& model_path, const std::string& data_path,
                            const std::vector<std::string>& x, const std::string& y, bool require_y) {
  CsvReadOptions ro;
  ro.require_y = require_y;
  std::string recorded;
  const json_t* fit = model_file.is_object() && model_file.contains("fit") && model_file["fit"].is_object()
                          ? &model_file["fit"]
                          : nullptr;
  // Gate covariates: the model names its columns (model/covariates.hpp).
  Covariates cov;
  if (model_file.is_object() && model_file.contains("covariates") && !model_file["covariates"].is_null()) {
    try {
      cov = Covariates::from_json(model_file["covariates"], "covariates");
    } catch (const std::exception& e) {
      throw std::runtime_error(model_path + ": " + e.what());
    }
  }
  if (!cov.shared()) {
    if (!x.empty() && x.size() != cov.dim())
      throw UsageError("--x: the model " + model_path + " reads " + std::to_string(cov.dim()) + " columns (" +
                       joined(cov.columns()) + "; " + cov.describe() + "); --x gives " + std::to_string(x.size()) +
                       " (it renames them in that order)");
    ro.x_columns = x.empty() ? cov.columns() : x;
    if (x.empty()) recorded = joined(cov.columns()) + " (" + cov.describe() + ")";
  } else if (!x.empty()) {
    ro.x_columns = x;
  } else if (fit && fit->contains("x_columns") && (*fit)["x_columns"].is_array()) {
    std::vector<std::string> cols;
    for (const auto& c : (*fit)["x_columns"]) {
      if (!c.is_string()) throw std::runtime_error(model_path + ": fit.x_columns must be an array of column names");
      cols.push_back(c.get<std::string>());
      recorded += (recorded.empty() ? "" : ",") + cols.back();
    }
    ro.x_columns = cols;
  }
  if (!y.empty()) {
    ro.y_column = y;
  } else if (fit && fit->contains("y_column") && (*fit)["y_column"].is_string() &&
             !(*fit)["y_column"].get<std::string>().empty()) {
    const std::string yc = (*fit)["y_column"].get<std::string>();
    if (require_y) ro.y_column = yc;
    else {
      // predict: the response is optional; use the recorded name only if the file has it.
      const auto t = read_csv_table(data_path);
      if (t.has_column(yc)) ro.y_column = yc;
    }
  }
  try {
    return read_csv(data_path, ro);
  } catch (const InputError& e) {
    if (recorded.empty()) throw;
    throw std::runtime_error(std::string(e.what()) + " (" + model_path + " was fitted with the columns " + recorded +
                     "; give --x to read others)");
  }
}

std::string fixed(double v, int digits) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string significant(double v, int digits, const char* nan_text) {
  if (std::isnan(v)) return nan_text;
  std::ostringstream s;
  s << std::setprecision(digits) << v;
  return s.str();
}

}  // namespace moerate::cli
