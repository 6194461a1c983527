#include "moerate/core/profile.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace moerate::profile {

namespace {

constexpr std::size_t kCounters = static_cast<std::size_t>(Counter::count_);
constexpr std::array<const char*, kCounters> kNames = {
    "fit_seconds",         "split_base_seconds",   "init_seconds",  "starts_seconds",
    "certificate_seconds", "best_seconds",         "best_polish_seconds",
    "lower_seconds",       "lower_polish_seconds", "pruned_seconds", "pruned_polish_seconds",
    "em_steps",            "em_steps_pruned",      "newton_steps",  "polish_calls",
    "polish_trials"};
constexpr std::size_t kFirstCount = static_cast<std::size_t>(Counter::em_steps);

struct Counters {
  std::array<std::atomic<std::int64_t>, kCounters> v{};
  ~Counters() {
    if (!enabled()) return;
    for (std::size_t i = 0; i < kCounters; ++i) {
      const auto x = v[i].load();
      if (i < kFirstCount) std::fprintf(stderr, "profile: %s %.3f\n", kNames[i], static_cast<double>(x) * 1e-9);
      else std::fprintf(stderr, "profile: %s %lld\n", kNames[i], static_cast<long long>(x));
    }
  }
};

Counters& counters() {
  static Counters c;
  return c;
}

}  // namespace

bool enabled() {
  static const bool on = [] {
    const char* e = std::getenv("MOERATE_PROFILE");
    return e != nullptr && *e != '\0' && *e != '0';
  }();
  return on;
}

std::int64_t thread_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

void add(Counter c, std::int64_t v) {
  if (enabled()) counters().v[static_cast<std::size_t>(c)] += v;
}

}  // namespace moerate::profile
