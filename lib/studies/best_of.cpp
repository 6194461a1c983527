#include "moerate/studies/best_of.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <utility>

#include "moerate/core/error.hpp"

namespace moerate {

namespace {

std::size_t require_column(const CsvTable& t, const std::string& name, const std::string& source) {
  if (!t.has_column(name)) throw InputError(source, 1, 0, "no column '" + name + "' (needed to compare starts)");
  return t.column(name);
}

bool is_certified(const std::string& v) { return v == "1" || v == "true" || v == "True"; }

}  // namespace

CsvTable with_best_of(const CsvTable& t, const std::vector<std::string>& labels, const std::string& new_label,
                      double tol, StartAgreement* agreement, const std::string& source) {
  const std::size_t c_set = require_column(t, "setting", source), c_n = require_column(t, "n", source),
                    c_rep = require_column(t, "rep", source), c_ll = require_column(t, "log_likelihood", source),
                    c_cert = require_column(t, "certified", source);
  // (n, rep) -> per label, the row index (the last one if a label repeats a data set).
  std::map<std::pair<std::string, std::string>, std::vector<long>> groups;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    const auto it = std::find(labels.begin(), labels.end(), row[c_set]);
    if (it == labels.end()) continue;
    auto& g = groups[{row[c_n], row[c_rep]}];
    if (g.empty()) g.assign(labels.size(), -1);
    g[std::size_t(it - labels.begin())] = long(r);
  }
  CsvTable out = t;
  StartAgreement a;
  a.best_count.assign(labels.size(), 0);
  std::vector<double> gaps;
  for (const auto& [key, g] : groups) {
    long best = -1;
    double best_ll = -INFINITY, worst_ll = INFINITY;
    bool all_certified = true;
    for (long r : g) {
      if (r < 0 || !is_certified(t.rows[std::size_t(r)][c_cert])) {
        all_certified = false;
        continue;
      }
      const double ll = std::strtod(t.rows[std::size_t(r)][c_ll].c_str(), nullptr);
      if (!std::isfinite(ll)) {
        all_certified = false;
        continue;
      }
      if (ll > best_ll) best_ll = ll, best = r;
      worst_ll = std::min(worst_ll, ll);
    }
    if (all_certified && g.size() > 1) {
      a.datasets++;
      const double gap = best_ll - worst_ll;
      gaps.push_back(gap);
      if (gap <= tol) a.agree++;
      for (std::size_t i = 0; i < g.size(); ++i)
        if (std::strtod(t.rows[std::size_t(g[i])][c_ll].c_str(), nullptr) >= best_ll - tol) a.best_count[i]++;
    }
    if (best < 0) {  // no certified row: copy one as it is (rates counts it as uncertified)
      for (long r : g)
        if (r >= 0) {
          best = r;
          break;
        }
    }
    if (best < 0) continue;
    auto row = t.rows[std::size_t(best)];
    row[c_set] = new_label;
    out.rows.push_back(std::move(row));
  }
  if (!gaps.empty()) {
    std::sort(gaps.begin(), gaps.end());
    const std::size_t m = gaps.size();
    a.median_gap = m % 2 ? gaps[m / 2] : 0.5 * (gaps[m / 2 - 1] + gaps[m / 2]);
    a.max_gap = gaps.back();
  }
  if (agreement) *agreement = a;
  return out;
}

}  // namespace moerate
