#include "moerate/gating/topk_gating.hpp"

#include <numeric>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

TopKGating::TopKGating(std::size_t k, std::size_t d, std::size_t top_k, Selection select)
    : SoftmaxGating(k, d), top_k_(top_k), select_(select) {
  if (top_k < 1 || top_k > k)
    fail("gating topk", "K", "must be between 1 and the number of experts " + std::to_string(k), top_k);
}

json TopKGating::family_json() const {
  return json{{"family", "topk"}, {"K", top_k_}, {"select", select_ == Selection::beta1x ? "beta1x" : "score"}};
}

std::string TopKGating::description() const {
  return "top-K sparse softmax: Softmax over the K largest beta1^T x (select=beta1x) or scores (select=score)";
}

arma::umat TopKGating::selected(const arma::mat& X) const {
  arma::mat T = beta1().t() * X;  // k x n
  if (select_ == Selection::score) T.each_col() += beta0();
  arma::umat M(k_, X.n_cols, arma::fill::zeros);
  std::vector<std::size_t> idx(k_);
  for (std::size_t j = 0; j < X.n_cols; ++j) {
    std::iota(idx.begin(), idx.end(), 0);
    // Largest first, ties to the smaller index (deterministic).
    std::partial_sort(idx.begin(), idx.begin() + top_k_, idx.end(), [&](std::size_t a, std::size_t b) {
      return T(a, j) > T(b, j) || (T(a, j) == T(b, j) && a < b);
    });
    for (std::size_t r = 0; r < top_k_; ++r) M(idx[r], j) = 1;
  }
  return M;
}

arma::mat TopKGating::log_weights(const arma::mat& X) const {
  arma::mat S = beta1().t() * X;
  S.each_col() += beta0();
  if (top_k_ < k_) {
    const arma::umat M = selected(X);
    S.elem(arma::find(M == 0)).fill(-kInf);
  }
  normalise_log_cols(S);
  return S;
}

arma::vec TopKGating::log_weights_vjp(const arma::mat& X, const arma::mat& C) const {
  // Within the (locally constant) selection the derivative is softmax's over the
  // selected experts; unselected entries of C are ignored (their log weight is
  // -inf and does not depend on the parameters).
  if (top_k_ == k_) return SoftmaxGating::log_weights_vjp(X, C);
  arma::mat Cm = C;
  Cm.elem(arma::find(selected(X) == 0)).zeros();
  return SoftmaxGating::log_weights_vjp(X, Cm);  // uses this->log_weights: pi = 0 off the selection
}

GateMStepResult TopKGating::m_step(const arma::mat& X, const arma::mat& R, const GateMStepOptions& opt) {
  if (top_k_ == k_) return SoftmaxGating::m_step(X, R, opt);
  return Gating::m_step(X, R, opt);
}

void TopKGating::init_from_responsibilities(const arma::mat& X, const arma::mat& R) {
  SoftmaxGating dense(k_, d_);
  dense.init_from_responsibilities(X, R);
  set_params(dense.params());
}

MOERATE_REGISTER_GATING(
    "topk", "top-K sparse softmax (topk:K=2[,select=beta1x|score]); unselected experts get weight 0",
    [](const json& spec, std::size_t k, std::size_t d) -> std::unique_ptr<Gating> {
      std::size_t top_k = 0;
      auto sel = TopKGating::Selection::beta1x;
      for (const auto& [key, v] : spec.items()) {
        if (key == "family") continue;
        if (key == "K" || key == "_") {
          if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 1 ||
              v.get<double>() != std::floor(v.get<double>()))
            throw InvalidArgument("gating topk: K must be a positive integer; got " + v.dump());
          top_k = static_cast<std::size_t>(v.get<double>());
        } else if (key == "select") {
          const std::string s = v.is_string() ? v.get<std::string>() : v.dump();
          if (s == "beta1x") sel = TopKGating::Selection::beta1x;
          else if (s == "score") sel = TopKGating::Selection::score;
          else throw InvalidArgument("gating topk: select must be beta1x or score; got " + v.dump());
        } else {
          throw InvalidArgument("gating topk: unknown option '" + key + "' (options: K, select)");
        }
      }
      if (top_k == 0) throw InvalidArgument("gating topk: the option K is required, e.g. topk:K=2");
      return std::make_unique<TopKGating>(k, d, top_k, sel);
    });

}  // namespace moerate
