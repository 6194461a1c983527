// moerate/core/text.hpp -- small string helpers shared by the readers.
//
//   trim("  1.5\r") == "1.5"
#pragma once

#include <string>

namespace moerate {

/// s without leading and trailing blanks (space, tab, CR, LF).
inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace moerate
