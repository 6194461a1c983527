// moerate list: every gating family, expert family and estimator.
#include <iomanip>
#include <iostream>

#include "cli_common.hpp"
#include "moerate/model/expert_family.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/model/gating.hpp"

void add_list_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List gating families, expert families and estimators");
  moerate::cli::set_example(cmd, "moerate list");
  cmd->callback([]() {
    std::cout << "gating families (--gating NAME[:key=value,...]):\n";
    for (const auto& [name, info] : moerate::gating_registry())
      std::cout << "  " << std::left << std::setw(24) << name << info.description << "\n";
    std::cout << "expert families (--expert NAME[:options]):\n";
    for (const auto& [name, info] : moerate::expert_registry())
      std::cout << "  " << std::left << std::setw(24) << name << info.description << "\n";
    std::cout << "estimators (--estimator NAME):\n";
    for (const auto& [name, info] : moerate::estimator_registry())
      std::cout << "  " << std::left << std::setw(24) << name << info.description << "\n";
  });
}
