#include "cli_common.hpp"

#include "moerate/core/error.hpp"
#include "moerate/io/csv.hpp"

#include <charconv>
#include <cmath>
#include <iostream>

#include "moerate/core/error.hpp"
#include "moerate/io/files.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

extern "C" void openblas_set_num_threads(int);

namespace moerate::cli {

int configure_threads(int threads) {
  if (threads < 0) throw UsageError("--threads: must be >= 0 (0 = all cores); got " + std::to_string(threads));
  if (threads > kMaxThreads) {
    std::cerr << "moerate: note: --threads " << threads << " capped at " << kMaxThreads << "\n";
    threads = kMaxThreads;
  }
  // Parallelism is at the level of starts, tasks and bootstrap replicates
  // (OpenMP); BLAS runs single-threaded so that results do not depend on the
  // thread count and threads are not oversubscribed.
  openblas_set_num_threads(1);
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

Dataset read_data_for_model(const json_t& model_file, const std::string& model_path, const std::string& data_path,
                            const std::vector<std::string>& x, const std::string& y, bool require_y) {
  CsvReadOptions ro;
  ro.require_y = require_y;
  std::string recorded;
  const json_t* fit = model_file.is_object() && model_file.contains("fit") && model_file["fit"].is_object()
                          ? &model_file["fit"]
                          : nullptr;
  if (!x.empty()) {
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

}  // namespace moerate::cli

