// moerate/core/rng.hpp -- reproducible random numbers.
//
// One engine type (std::mt19937_64, fully specified by the standard) with
// Boost.Random distributions (their algorithms are fixed, unlike std::'s),
// so a seed gives the same numbers on every platform. Parallel work never
// shares an engine: each task derives its own seed from the study seed and
// the task's indices with derive_seed (splitmix64 mixing), so results do not
// depend on the thread count or on the order in which tasks run.
//
//   moerate::Rng rng(moerate::derive_seed(study_seed, {n_index, replication, k}));
//   double z = rng.normal();
#pragma once

#include <armadillo>
#include <boost/random/normal_distribution.hpp>
#include <boost/random/uniform_01.hpp>
#include <boost/random/uniform_int_distribution.hpp>
#include <cstdint>
#include <initializer_list>
#include <random>

namespace moerate {

/// splitmix64 finaliser: a bijective 64-bit mixer.
inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A seed for a sub-task, a pure function of the parent seed and the indices.
inline std::uint64_t derive_seed(std::uint64_t seed, std::initializer_list<std::uint64_t> idx) {
  std::uint64_t h = mix64(seed);
  for (auto i : idx) h = mix64(h ^ mix64(i + 0x632be59bd9b4e019ULL));
  return h;
}

class Rng {
public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  double uniform() { return boost::random::uniform_01<double>()(engine_); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() { return boost::random::normal_distribution<double>(0.0, 1.0)(engine_); }
  double normal(double mu, double sd) { return mu + sd * normal(); }
  /// Uniform integer in [lo, hi].
  std::size_t integer(std::size_t lo, std::size_t hi) {
    return boost::random::uniform_int_distribution<std::size_t>(lo, hi)(engine_);
  }
  arma::vec normal_vec(std::size_t n) {
    arma::vec v(n);
    for (auto& x : v) x = normal();
    return v;
  }
  /// Index drawn with probabilities proportional to exp(log_w) (log space).
  std::size_t categorical_log(const arma::vec& log_w);
  std::uint64_t next_seed() { return engine_(); }
  std::mt19937_64& engine() { return engine_; }

private:
  std::mt19937_64 engine_;
};

}  // namespace moerate
