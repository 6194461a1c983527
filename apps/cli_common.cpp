#include "cli_common.hpp"

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
