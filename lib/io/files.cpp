#include "moerate/io/files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "moerate/core/error.hpp"

namespace moerate {

namespace {

std::mutex inputs_mu;
std::vector<std::string>& noted_inputs() {
  static std::vector<std::string> v;
  return v;
}

/// Line and column (1-based) of byte offset `pos` in text.
std::pair<std::size_t, std::size_t> line_col(const std::string& text, std::size_t pos) {
  std::size_t line = 1, col = 1;
  pos = std::min(pos, text.size());
  for (std::size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

// Temporary files for the signal handler: fixed slots, no allocation in the handler.
constexpr int kTempSlots = 16;
constexpr std::size_t kTempPathMax = 4096;
char temp_paths[kTempSlots][kTempPathMax];
std::atomic<bool> temp_used[kTempSlots];
std::mutex temp_mu;

extern "C" void cleanup_on_signal(int sig) {
  for (int i = kTempSlots - 1; i >= 0; --i)  // files first, then their directories
    if (temp_used[i].load() && ::unlink(temp_paths[i]) != 0) ::rmdir(temp_paths[i]);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void register_temp_file(const std::string& path) {
  if (path.size() >= kTempPathMax) return;
  std::lock_guard<std::mutex> lock(temp_mu);
  for (int i = 0; i < kTempSlots; ++i)
    if (!temp_used[i].load()) {
      std::memcpy(temp_paths[i], path.c_str(), path.size() + 1);
      temp_used[i].store(true);
      return;
    }
}

void unregister_temp_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(temp_mu);
  for (int i = 0; i < kTempSlots; ++i)
    if (temp_used[i].load() && path == temp_paths[i]) temp_used[i].store(false);
}

void install_cleanup_handlers() {
  struct sigaction sa {};
  sa.sa_handler = cleanup_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
}

void note_input(const std::string& path) {
  std::lock_guard<std::mutex> lock(inputs_mu);
  noted_inputs().push_back(path);
}

std::ifstream open_text_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path, 0, 0, "is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, 0, std::string("cannot open file for reading: ") + std::strerror(errno));
  note_input(path);
  return in;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in = open_text_file(path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, 0, 0, "read error");
  return ss.str();
}

json parse_json_text(const std::string& raw, const std::string& path) {
  std::string text = raw;
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text = text.substr(3);  // UTF-8 byte-order mark
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw InputError(path, 0, 0, "file is empty");
  // Parse with a callback that rejects numbers a double cannot hold (the
  // library would store them as inf or throw its own message).
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    const auto [line, col] = line_col(text, e.byte > 0 ? e.byte - 1 : 0);
    std::string msg = e.what();
    const auto p = msg.find("parse error");
    if (p != std::string::npos) msg = msg.substr(p);
    const auto q = msg.find(": syntax error while parsing value - ");
    if (q != std::string::npos) msg = msg.substr(q + 2);
    throw InputError(path, line, col, "invalid JSON: " + msg);
  } catch (const json::out_of_range& e) {
    // "number overflow parsing '1e999'": locate the literal.
    std::string msg = e.what();
    const auto a = msg.find('\''), b = msg.rfind('\'');
    if (a != std::string::npos && b > a) {
      const std::string lit = msg.substr(a + 1, b - a - 1);
      const auto pos = text.find(lit);
      const auto [line, col] = pos == std::string::npos ? std::pair<std::size_t, std::size_t>{0, 0} : line_col(text, pos);
      throw InputError(path, line, col, "number " + lit + " is out of the range of a double (at most about 1.8e308)");
    }
    throw InputError(path, 0, 0, "a number is out of the range of a double");
  } catch (const json::exception& e) {
    throw InputError(path, 0, 0, std::string("invalid JSON: ") + e.what());
  }
}

json read_json_file(const std::string& path) { return parse_json_text(read_text_file(path), path); }

void check_output_path(const std::string& path, const std::vector<std::string>& inputs, bool allow_noted_inputs) {
  namespace fs = std::filesystem;
  if (path.empty()) throw InputError("--out", 0, 0, "the output file name is empty");
  if (path == "-") throw InputError(path, 0, 0, "this command cannot write to standard output; give a file name");
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) throw InputError(path, 0, 0, "is a symbolic link; refusing to replace it (give the real path)");
    if (S_ISDIR(st.st_mode)) throw InputError(path, 0, 0, "is a directory; an output must be a file");
    if (!S_ISREG(st.st_mode))
      throw InputError(path, 0, 0, "is not a regular file (a device, FIFO or socket); refusing to replace it");
    std::vector<std::string> all = inputs;
    if (!allow_noted_inputs) {
      std::lock_guard<std::mutex> lock(inputs_mu);
      all.insert(all.end(), noted_inputs().begin(), noted_inputs().end());
    }
    for (const auto& in : all) {
      std::error_code ec;
      if (!in.empty() && fs::equivalent(path, in, ec) && !ec)
        throw InputError(path, 0, 0, "is also an input (" + in + "); refusing to overwrite it, choose another output name");
    }
  } else if (errno != ENOENT) {
    throw InputError(path, 0, 0, std::string("cannot use as an output: ") + std::strerror(errno));
  }
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(path, 0, 0, "directory does not exist: " + dir.string());
}

void write_file_atomic(const std::string& path, const std::string& text, bool replaces_input) {
  namespace fs = std::filesystem;
  check_output_path(path, {}, replaces_input);
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const fs::path tmp = dir / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()));
  register_temp_file(tmp.string());
  auto give_up = [&](const std::string& why) {
    std::error_code ec;
    fs::remove(tmp, ec);
    unregister_temp_file(tmp.string());
    throw InputError(path, 0, 0, why);
  };
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) give_up(std::string("cannot open a temporary file for writing in ") + dir.string() + ": " + std::strerror(errno));
    out << text;
    out.flush();
    if (!out) {
      out.close();
      give_up("write failed (disk full?)");
    }
    out.close();
    if (!out) give_up("write failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) give_up("cannot rename the temporary file into place: " + ec.message());
  unregister_temp_file(tmp.string());
}

void check_json_finite(const json& j, const std::string& where) {
  if (j.is_number_float()) {
    if (!std::isfinite(j.get<double>())) throw InvalidArgument(where + ": value is not finite; refusing to write it");
  } else if (j.is_object()) {
    for (const auto& [k, v] : j.items()) check_json_finite(v, where + "." + k);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) check_json_finite(j[i], where + "[" + std::to_string(i) + "]");
  }
}

void write_json_file(const std::string& path, const json& j) {
  check_json_finite(j, path + ": output");
  write_file_atomic(path, j.dump(2) + "\n");
}

}  // namespace moerate
