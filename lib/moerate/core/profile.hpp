// moerate/core/profile.hpp -- where a fit's CPU time goes (a developer's tool).
//
// With MOERATE_PROFILE set in the environment, the estimators add thread CPU
// times and step counts to process-wide counters, and the program prints them
// to stderr when it exits (lines "profile: NAME VALUE"); without it nothing is
// timed and nothing printed. Only top-level fits count (a split start's base
// fit is reported as its own phase, not again inside). Used to find where the
// headline study's time goes (docs/performance.md, round 18):
//
//   MOERATE_PROFILE=1 moerate study linear-vs-ffn --scale paper --replications 2 --n 100:100000:20
//
// The numbers change no result: fits are the same in every bit with and without it.
// Times are thread CPU times: a start's run is timed in the thread that runs it,
// the fit and its set-up phases in the thread that called fit() (so a fit with
// several threads is profiled in full with threads = 1; a study's fits run one
// per thread).
#pragma once

#include <cstdint>

namespace moerate::profile {

enum class Counter {
  fit_seconds,           // top-level fits, in all
  split_base_seconds,    // the split starts' (k-1)-expert base fit
  init_seconds,          // k-means and the starts' initial models
  starts_seconds,        // the starts' EM runs (with their Newton polish)
  certificate_seconds,   // the best start's certificate
  best_seconds,          // runs of starts that end at the fit's best maximum (within 1e-3 nats)
  best_polish_seconds,   // of which in the Newton polish
  lower_seconds,         // runs of starts that end at a lower maximum
  lower_polish_seconds,
  pruned_seconds,        // runs of starts stopped as dominated
  pruned_polish_seconds,
  em_steps,              // EM steps of the starts that ran to their end
  em_steps_pruned,       // EM steps of the starts stopped as dominated
  newton_steps,          // Newton steps kept, all starts
  polish_calls,          // Newton polish calls, all starts
  polish_trials,         // trial points evaluated by the polish (kept or rejected)
  count_
};

/// MOERATE_PROFILE is set (read once).
bool enabled();
/// CPU time of the calling thread, in nanoseconds.
std::int64_t thread_cpu_ns();
/// Adds to a counter (seconds counters take nanoseconds).
void add(Counter c, std::int64_t v);


/// Adds the thread CPU time from construction to destruction to `c` (when `on`).
class Timer {
 public:
  explicit Timer(Counter c, bool on = true) : c_(c), on_(on && enabled()), t0_(on_ ? thread_cpu_ns() : 0) {}
  ~Timer() { stop(); }
  void stop() {
    if (on_) add(c_, thread_cpu_ns() - t0_);
    on_ = false;
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

 private:
  Counter c_;
  bool on_;
  std::int64_t t0_;
};

}  // namespace moerate::profile
