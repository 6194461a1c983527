// moerate/metrics/identifiability.hpp -- numerical checks of strong identifiability.
//
// models.md section 4: an expert family h(x; eta) is strongly identifiable
// (Gaussian-MoE version) when, for distinct eta_1..eta_k, the functions of x
//     dh/deta_u (x, eta_j),  d2h/(deta_u deta_v)(x, eta_j),  x_w dh/deta_v (x, eta_j)
// are linearly independent; the least-squares version uses
//     { x^alpha d^|tau| h / d eta^tau : |alpha| + |tau| <= 2 }.
// Two further sets expose the interactions behind the slow rates:
//   density      (models.md 9.5; "gate-expert" is the same set under its old name)
//                the Taylor expansion to order 2 of
//                  u(x, y) = exp(beta1^T x) N(y; h(x; eta), nu)
//                in (beta1, eta, nu) (u itself, first and second derivatives),
//                per expert; linear experts give du/da = d2u/(dbeta1 db) and
//                the heat equation d2u/db2 = 2 du/dnu; c phi(a^T x + b) gives the
//                first; bias-free c phi(a^T x) (sigmoid, tanh, gelu) none; relu
//                gives positive homogeneity a du/da (+ b du/db) - c du/dc = 0.
//   gate         the gate's own parameters: d log pi_j(x) / d theta_p as
//                functions of (x, j); temperature with a linear router gives
//                tau d/dtau = -(beta . d/dbeta) (a scale relation).
//
// Method: the set is evaluated at N random points (x, and y where the
// Gaussian density enters) as an N x m matrix; columns are scaled to unit norm
// (identically zero functions are reported as relations "f = 0"); the
// singular values decide the rank: exact relations are singular values below
// 1e-12 * s_max with analytic derivatives (they come out at ~1e-16; 1e-9 with
// numerical second derivatives); values between that and rel_threshold
// (1e-8) are reported as near relations (smooth functions on an interval
// can be genuinely independent yet have singular values ~1e-11); the
// threshold-only rank and the largest relative gap are reported too; the null space is turned into a
// sparse basis by reduced row echelon form and read back as relations among
// the named functions, e.g. "dh/da_1 - x_1*dh/db = 0".
//
// The h-level (gaussian) set is a sufficient condition only: read literally it
// flags identically zero second derivatives (d2h/dc2 = 0) and relations of the
// parameterisation (dh/da = c d2h/(da dc) for h = c phi(a^T x)). Each h-level
// function has a density-level counterpart (dh/deta_u -> du/deta_u,
// d2h/(deta_u deta_v) -> d2u/(deta_u deta_v), x_w dh/deta_u -> d2u/(dbeta1_w
// deta_u), evaluated with y drawn near the experts); an h-level relation counts
// (IdentReport::relations, the verdict) only when the same combination of the
// counterparts vanishes too ("lifts" to the density); the others are listed as
// IdentReport::excused (identically zero functions, parameterisation relations).
// So the gaussian verdict agrees with the density version: linear, polynomial
// and ffn with a bias keep dh/da = x dh/db (it lifts to du/da = d2u/(dbeta1 db)).
// The lse version is read literally (no lift).
//
// Derivatives: ExpertFamily::jacobian is analytic; a family's hessian() is
// used when it agrees with Richardson-extrapolated central differences of the
// analytic Jacobian (to 1e-8 relative), else the Richardson values are used
// (accuracy ~1e-10 relative); the report says which.
//
//   IdentOptions o;  o.seed = 1;
//   auto s = random_setup(json{{"family","linear"}}, json{{"family","softmax"}}, 1, 2, 1);
//   IdentReport r = identify(s, IdentVersion::gaussian, o);
//   // r.relations[0].text == "dh/da_1 - x_1*dh/db = 0"   (r.strongly_identifiable == false)
#pragma once

#include <armadillo>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moerate/model/expert_family.hpp"
#include "moerate/model/gating.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

enum class IdentVersion { gaussian, lse, gate_expert, gate, density };
/// "gaussian", "lse", "gate-expert", "gate", "density" (density = the gate-expert set)
std::string ident_version_name(IdentVersion v);
IdentVersion parse_ident_version(const std::string& s);  // throws InvalidArgument

struct IdentOptions {
  std::size_t n_points = 0;            // 0: max(400, 4 * number of functions)
  std::uint64_t seed = 1;              // points (and random parameters in random_setup)
  std::string design = "uniform:-2,2"; // distribution of x (draw_design spec)
  std::vector<std::string> free_blocks;  // expert blocks that vary (e.g. {"a"}); empty = all
  double rel_threshold = 1e-8;         // singular values <= rel_threshold * s_max: near relations
  double exact_threshold = 0;          // <= this * s_max: exact relations (0 = auto: 1e-12 with
                                       // analytic derivatives, 1e-9 with numerical ones)
  double zero_threshold = 1e-10;       // a column with norm <= this * max norm is identically zero
  double coef_drop = 1e-6;             // relation coefficients below this (relative) are dropped
  void validate() const;
};

/// Parameters at which a set is evaluated: k experts with distinct eta_j,
/// variances nu_j, gate locations beta1_j (d x k) and, for the gate version,
/// a gating with its parameters set.
struct IdentSetup {
  std::shared_ptr<const ExpertFamily> experts;
  std::unique_ptr<Gating> gating;      // may be null (expert-only versions)
  arma::mat eta;                       // q x k
  arma::vec nu;                        // k
  arma::mat location;                  // d x k
  std::string source;                  // "random (seed S)" or the model file
  std::size_t n_experts() const { return eta.n_cols; }
  std::size_t dim() const { return experts->dim(); }
};

/// Random distinct parameters: eta entries +-U(0.5, 1.5) (redrawn until valid),
/// nu ~ U(0.3, 1), beta1 ~ N(0, 0.5^2); gating parameters perturbed from the
/// family's defaults by N(0, 0.8^2) (positive-only ones such as tau drawn as
/// exp(N(0, 0.3^2))). gating_spec may be null (no gate version).
IdentSetup random_setup(const json& expert_spec, const json& gating_spec, std::size_t d,
                        std::size_t k, std::uint64_t seed);
/// The families, dimension, k and parameters of a model (eta_j, nu_j, atom locations).
IdentSetup setup_from_model(const GaussianMoE& m, const std::string& source);

/// An evaluated function set: F is N x m, one column per named function.
struct FunctionSet {
  IdentVersion version = IdentVersion::gaussian;
  arma::mat F;
  std::vector<std::string> base_names;   // name without expert index, e.g. "dh/da_1"
  std::vector<int> expert;               // 0-based expert of each column; -1 = shared
  std::string derivatives;               // how the derivatives were obtained
  double derivative_accuracy = 0;        // stated relative accuracy (0 = exact/analytic)
  bool analytic = true;                  // every derivative analytic (decides the auto exact threshold)
  /// gaussian version with y: the density-level counterpart of each column (N x m), else empty.
  arma::mat lifted;
  std::string full_name(std::size_t c) const;  // "dh/da_1[2]" (expert 2) or the base name
};

/// d2h/(deta_u deta_v) (q*q x n, row u*q+v) by Richardson-extrapolated central
/// differences of the analytic Jacobian (accuracy ~1e-10 relative).
arma::mat richardson_hessian(const ExpertFamily& f, const arma::mat& X, const arma::vec& eta);
/// The family's hessian() when the family overrides it (analytic) and it
/// agrees with richardson_hessian to 1e-8 relative; else the Richardson values
/// (*analytic = false).
arma::mat checked_hessian(const ExpertFamily& f, const arma::mat& X, const arma::vec& eta,
                          std::string* source = nullptr, double* accuracy = nullptr, bool* analytic = nullptr);

/// Evaluate a version's set at X (d x N) and, for gate-expert, y (1 x N).
FunctionSet function_set(const IdentSetup& s, IdentVersion v, const arma::mat& X,
                         const arma::rowvec& y, const IdentOptions& opt);

struct RelationTerm {
  std::size_t column = 0;
  std::string name;    // full name of the function
  double coef = 0;     // in the functions' own units, largest |coef| = 1
};

struct Relation {
  std::vector<RelationTerm> terms;
  std::vector<int> experts;   // experts involved (sorted; -1 = shared columns)
  bool zero_function = false; // a single identically zero function
  std::string text;           // "dh/da_1 - x_1*dh/db = 0" (base names if one expert)
  std::string note;           // e.g. "scale invariance: theta . d/dtheta = 0"
  double coef_of(const std::string& full_name) const;  // 0 if absent
};

struct IdentReport {
  IdentVersion version = IdentVersion::gaussian;
  std::string expert_family, gating_family, source;
  std::size_t dim = 0, n_experts = 0, n_points = 0, n_functions = 0;
  std::vector<std::string> names;      // full names of the functions
  arma::vec singular_values;           // of the nonzero, unit-norm columns
  std::size_t n_zero_functions = 0;
  std::size_t rank = 0;                // singular values above the exact-relation level (decides)
  std::size_t rank_threshold = 0;      // singular values above rel_threshold (near relations below)
  double exact_level = 0;              // absolute exact-relation level
  std::size_t rank_gap = 0;            // rank at the largest relative gap overall (m if no gap > 1e4)
  double threshold = 0;                // absolute threshold rel_threshold * s_max
  double deciding_gap = 0;             // s_rank / s_(rank+1) (0 when full rank)
  double largest_gap = 0;              // largest s_i / s_(i+1)
  std::string derivatives;
  double derivative_accuracy = 0;
  std::vector<std::string> parameters; // "expert j: eta = {...}, nu = ..., beta1 = [...]"
  std::vector<Relation> relations;     // sparse basis of all exact linear relations (gaussian version:
                                       // those that lift to the density; these decide the verdict)
  std::vector<Relation> excused;       // gaussian version: h-level relations that do not lift (identically
                                       // zero functions, parameterisation relations), with a note
  std::size_t n_h_relations = 0;       // gaussian version: dimension of the h-level null space
  std::vector<Relation> near_relations;  // directions with exact level < s <= threshold (ill-conditioning)
  std::vector<std::string> grouped;    // relations grouped over experts ("experts 1, 2: ...")
  bool strongly_identifiable = false;  // no relation
  json to_json() const;
  std::string text() const;            // human report
};

/// SVD, rank and relations of an evaluated set.
IdentReport analyse_function_set(const FunctionSet& fs, const IdentOptions& opt);
/// Draw N points from opt (seeded), evaluate the set and analyse it.
IdentReport identify(const IdentSetup& s, IdentVersion v, const IdentOptions& opt);

/// Sparse basis of the column space of N (m x z, orthonormal null basis):
/// rows of the reduced row echelon form of N^T (z x m), pivots = 1.
arma::mat sparse_basis(const arma::mat& N, double tol = 1e-7);

}  // namespace moerate
