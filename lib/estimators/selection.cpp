// Choosing the number of experts by AIC, BIC and ICL (see the header).
#include "moerate/estimators/selection.hpp"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "moerate/core/error.hpp"
#include "moerate/io/csv.hpp"

namespace moerate {

namespace {

std::size_t parse_whole(const std::string& s, const std::string& option, const std::string& text) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    throw InvalidArgument(option + ": expected a number of experts K or a range A:B of whole numbers >= 1; got '" +
                          text + "'");
  return static_cast<std::size_t>(std::stoul(s));
}

}  // namespace

std::pair<std::size_t, std::size_t> parse_k_range(const std::string& text, const std::string& option) {
  const auto colon = text.find(':');
  std::size_t a = 0, b = 0;
  if (colon == std::string::npos) {
    a = b = parse_whole(text, option, text);
  } else {
    a = parse_whole(text.substr(0, colon), option, text);
    b = parse_whole(text.substr(colon + 1), option, text);
  }
  if (a < 1) throw InvalidArgument(option + ": the number of experts must be >= 1; got '" + text + "'");
  if (b < a)
    throw InvalidArgument(option + ": the range " + text + " is reversed or empty (write A:B with A <= B, e.g. " +
                          std::to_string(b) + ":" + std::to_string(a) + ")");
  return {a, b};
}

double classification_entropy(const arma::mat& R) {
  double e = 0;
  for (double r : R)
    if (r > 0) e -= r * std::log(r);
  return e;
}

void SelectOptions::validate() const {
  if (k_min < 1) fail("SelectOptions", "k_min", "must be >= 1", k_min);
  if (k_max < k_min) fail("SelectOptions", "k_max", "must be >= k_min = " + std::to_string(k_min), k_max);
  if (!(tiny_variance >= 0) || !std::isfinite(tiny_variance))
    fail("SelectOptions", "tiny_variance", "must be finite and >= 0", tiny_variance);
  fit.validate();
}

std::vector<CriterionPick> pick_criteria(const std::vector<SelectionRow>& rows) {
  std::vector<CriterionPick> picks;
  for (const std::string c : {"aic", "bic", "icl"}) {
    CriterionPick p;
    p.criterion = c;
    double best = std::numeric_limits<double>::infinity(), best_all = best;
    for (const auto& r : rows) {
      const double v = c == "aic" ? r.aic : c == "bic" ? r.bic : r.icl;
      if (!std::isfinite(v)) continue;
      if (v < best_all) {
        best_all = v;
        p.overall_k = r.k;
        p.overall_degenerate = r.degenerate;
      }
      if (!r.degenerate && v < best) {
        best = v;
        p.k = r.k;
      }
    }
    picks.push_back(p);
  }
  return picks;
}

SelectionResult select_experts(const arma::mat& X, const arma::rowvec& y, const SelectOptions& opt) {
  opt.validate();
  const auto t0 = std::chrono::steady_clock::now();
  SelectionResult s;
  s.n_obs = y.n_elem;
  if (s.n_obs < opt.k_max)
    throw InvalidArgument("select: k = " + std::to_string(opt.k_max) + " experts need at least k observations; n = " +
                          std::to_string(s.n_obs));
  s.var_y = s.n_obs > 1 ? arma::var(y) : 0.0;
  for (std::size_t k = opt.k_min; k <= opt.k_max; ++k) {
    FitOptions fo = opt.fit;
    fo.n_experts = k;
    FitResult r = fit(X, y, fo);
    SelectionRow row;
    row.k = k;
    row.log_likelihood = r.log_likelihood;
    row.n_params = r.n_params;
    row.aic = r.aic;
    row.bic = r.bic;
    if (r.model.kind() == ModelKind::gaussian) {
      row.entropy = classification_entropy(r.model.responsibilities(X, y));
      row.icl = r.bic + 2 * row.entropy;
    } else {
      row.entropy = arma::datum::nan;
      row.icl = arma::datum::nan;
    }
    const auto& c = r.certificate;
    if (!c.near_empty.empty()) row.flags.push_back("near_empty");
    if (!c.floored.empty()) row.flags.push_back("floored");
    if (c.underdetermined) row.flags.push_back("underdetermined");
    const bool degenerate_cert = !row.flags.empty();
    row.min_variance_ratio = s.var_y > 0 && r.model.kind() == ModelKind::gaussian ? r.model.nu().min() / s.var_y
                                                                                    : arma::datum::nan;
    const bool tiny = std::isfinite(row.min_variance_ratio) && row.min_variance_ratio < opt.tiny_variance;
    if (tiny) row.flags.push_back("tiny_variance");
    row.degenerate = degenerate_cert || tiny;
    // Flags that do not make a fit degenerate, reported for information.
    if (!c.at_bound.empty()) row.flags.push_back("at_bound");
    if (!c.saturated.empty()) row.flags.push_back("saturated");
    row.certified = c.certified;
    row.stop_reason = stop_reason_name(r.stop_reason);
    s.rows.push_back(row);
    s.fits.push_back(std::move(r));
  }
  s.picks = pick_criteria(s.rows);
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

namespace {

std::string join_flags(const std::vector<std::string>& f) {
  std::string s;
  for (const auto& x : f) s += (s.empty() ? "" : ";") + x;
  return s;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

json SelectionResult::to_json() const {
  json j;
  j["n_obs"] = n_obs;
  j["var_y"] = var_y;
  j["seconds"] = seconds;
  j["rows"] = json::array();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    j["rows"].push_back({{"k", r.k},
                         {"log_likelihood", r.log_likelihood},
                         {"n_params", r.n_params},
                         {"aic", r.aic},
                         {"bic", r.bic},
                         {"icl", number_or_null(r.icl)},
                         {"entropy", number_or_null(r.entropy)},
                         {"min_variance_ratio", number_or_null(r.min_variance_ratio)},
                         {"flags", r.flags},
                         {"degenerate", r.degenerate},
                         {"certified", r.certified},
                         {"stop_reason", r.stop_reason},
                         {"model", fits[i].to_json()}});
  }
  j["picks"] = json::object();
  for (const auto& p : picks)
    j["picks"][p.criterion] = {{"k", p.k == 0 ? json(nullptr) : json(p.k)},
                               {"overall_k", p.overall_k == 0 ? json(nullptr) : json(p.overall_k)},
                               {"overall_degenerate", p.overall_degenerate}};
  return j;
}

std::string SelectionResult::csv() const {
  std::ostringstream os;
  os << "k,log_likelihood,n_params,aic,bic,icl,entropy,min_variance_ratio,degenerate,certified,stop_reason,flags\n";
  for (const auto& r : rows)
    os << r.k << ',' << format_double(r.log_likelihood) << ',' << r.n_params << ',' << format_double(r.aic) << ','
       << format_double(r.bic) << ',' << format_double(r.icl) << ',' << format_double(r.entropy) << ','
       << format_double(r.min_variance_ratio) << ',' << (r.degenerate ? 1 : 0) << ',' << (r.certified ? 1 : 0) << ','
       << csv_field(r.stop_reason) << ',' << csv_field(join_flags(r.flags)) << '\n';
  return os.str();
}

std::string SelectionResult::table() const {
  std::ostringstream os;
  os << std::setprecision(6);
  os << "   k  log-likelihood  params          AIC          BIC          ICL  flags\n";
  for (const auto& r : rows) {
    os << std::setw(4) << r.k << std::setw(16) << r.log_likelihood << std::setw(8) << r.n_params << std::setw(13)
       << r.aic << std::setw(13) << r.bic << std::setw(13) << r.icl << "  "
       << (r.degenerate ? "DEGENERATE " : "") << join_flags(r.flags) << "\n";
  }
  for (const auto& p : picks) {
    os << p.criterion << ": ";
    if (p.k == 0)
      os << "no pick (every fit is degenerate)";
    else
      os << "k = " << p.k;
    if (p.overall_degenerate && p.overall_k != p.k)
      os << "  (k = " << p.overall_k << " has a lower " << p.criterion << " but is degenerate: "
         << join_flags(rows[p.overall_k - rows.front().k].flags) << ")";
    os << "\n";
  }
  return os.str();
}

}  // namespace moerate
