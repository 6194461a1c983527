// moerate/model/design.hpp -- designs (covariate distributions) for simulation.
//
// A design spec is "uniform:LO,HI" (default uniform:0,1), "normal:MU,SD" or
// "grid:LO,HI" (equally spaced, per coordinate); every coordinate is drawn
// independently. Used by `simulate`, sweeps and the density distances.
//
//   Rng rng(1);
//   arma::mat X = draw_design("uniform:-1,1", 2, 500, rng);   // 2 x 500
#pragma once

#include <armadillo>
#include <string>

#include "moerate/core/rng.hpp"

namespace moerate {

/// Draw an n x d design; returns d x n.
arma::mat draw_design(const std::string& spec, std::size_t d, std::size_t n, Rng& rng);

}  // namespace moerate
