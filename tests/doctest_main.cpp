// Test main: prints the seed used by randomised tests so failures reproduce.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>
#include <iostream>

#include "moerate/core/parallel.hpp"

int main(int argc, char** argv) {
  moerate::prefer_passive_openmp(argv);  // as the program does (may re-execute once)
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  std::cout << "[moerate tests] randomised tests use fixed seeds stated in each test case\n";
  return ctx.run();
}
