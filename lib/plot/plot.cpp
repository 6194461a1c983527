// plot.cpp -- log-log convergence figures through gnuplot; see moerate/plot.hpp.
#include "moerate/plot/plot.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "moerate/core/error.hpp"
#include "moerate/io/files.hpp"
#include "moerate/core/rng.hpp"

extern char** environ;

namespace moerate {

namespace {

// Okabe-Ito, colour-blind safe; yellow last (weak on white).
const std::vector<std::string> palette = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                          "#E69F00", "#56B4E9", "#000000", "#999933"};

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Text for a double-quoted gnuplot string in enhanced mode.
std::string escape_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '_' || c == '^' || c == '{' || c == '}' || c == '@' || c == '&' || c == '~') {
      out += "\\\\";
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string quote(const std::string& s) { return "\"" + escape_text(s) + "\""; }

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Tick list for a log axis on [lo, hi]: decades labelled 10^k when at least three
// fit, otherwise 1-2-5 steps labelled as plain numbers; minor tics at 2..9 x 10^k.
std::string log_tics(const std::string& axis, double lo, double hi) {
  const int k0 = static_cast<int>(std::floor(std::log10(lo))) - 1;
  const int k1 = static_cast<int>(std::ceil(std::log10(hi))) + 1;
  int n_decades = 0;
  for (int k = k0; k <= k1; ++k) {
    const double v = std::pow(10.0, k);
    if (v >= lo && v <= hi) ++n_decades;
  }
  std::ostringstream s;
  s << "set " << axis << "tics (";
  bool first = true;
  auto add = [&](const std::string& label, double v, int level) {
    if (!(v >= lo && v <= hi)) return;
    s << (first ? "" : ", ") << "\"" << label << "\" " << num(v) << (level ? " 1" : "");
    first = false;
  };
  for (int k = k0; k <= k1; ++k) {
    const double d = std::pow(10.0, k);
    if (n_decades >= 3) {
      add("10^{" + std::to_string(k) + "}", d, 0);
      for (int m = 2; m <= 9; ++m) add("", m * d, 1);
    } else {
      for (int m = 1; m <= 9; ++m) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", m * d);
        // Over two decades the labels 1, 2, 5 crowd at the top (50000 and 100000 run into
        // each other): 1 and 3, nearly evenly spaced in log, there.
        const bool major = n_decades >= 2 ? (m == 1 || m == 3) : (m == 1 || m == 2 || m == 5);
        add(major ? buf : "", m * d, major ? 0 : 1);
      }
    }
  }
  s << ")\n";
  return s.str();
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (v > 0 && std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  bool empty() const { return !(lo <= hi); }
  // Pad on the log scale by frac of the span (at least min_pad decades).
  Range padded(double frac, double min_pad) const {
    const double a = std::log10(lo), b = std::log10(hi);
    const double pad = std::max((b - a) * frac, min_pad);
    return {std::pow(10.0, a - pad), std::pow(10.0, b + pad)};
  }
};

double theory_at(const RateFit& f, double e_theory, double n) {
  const double n_mid = std::sqrt(f.n_min * f.n_max);
  const double l_mid = std::exp(f.intercept - f.exponent * std::log(n_mid));
  return l_mid * std::pow(n / n_mid, -e_theory);
}

std::string terminal_line(const std::string& ext, int width, int height, const PlotOptions& opt,
                          int font_size) {
  std::ostringstream s;
  const std::string font = escape_text(opt.font);
  if (ext == ".png") {
    s << "set terminal pngcairo enhanced color size " << width << "," << height << " font \"" << font
      << "," << font_size << "\" linewidth 1.3 background rgb \"white\"\n";
  } else if (ext == ".svg") {
    s << "set terminal svg enhanced size " << width << "," << height << " font \"" << font << ","
      << font_size << "\" linewidth 1.3 background rgb \"white\"\n";
  } else if (ext == ".pdf") {
    // Printed size: 1000 px per 6.5 in, fonts scaled alike.
    const double scale = 6.5 / 1000.0;
    s << "set terminal pdfcairo enhanced color size " << fixed(width * scale, 2) << "in,"
      << fixed(height * scale, 2) << "in font \"" << font << "," << fixed(font_size * 0.5, 1)
      << "\" linewidth 0.8\n";
  } else {
    throw InvalidArgument("plot: output extension must be .png, .svg or .pdf; got '" + ext + "'");
  }
  return s.str();
}

std::string percent(double q) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", 100 * q);
  return buf;
}

}  // namespace

std::string exponent_label(double e) {
  for (int q = 1; q <= 24; ++q) {
    const double p = e * q;
    if (std::fabs(p - std::round(p)) < 1e-9 * std::max(1.0, std::fabs(p))) {
      const long pi = std::lround(p);
      if (q == 1) return std::to_string(pi);
      return std::to_string(pi) + "/" + std::to_string(q);
    }
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", e);
  return buf;
}

void PlotOptions::validate() const {
  const char* fn = "PlotOptions";
  if (!(bar_low >= 0 && bar_low < bar_high && bar_high <= 1))
    fail(fn, "quantile bars", "must satisfy 0 <= low < high <= 1", to_text(bar_low) + "," + to_text(bar_high));
  if (!(jitter >= 0 && jitter < 0.5)) fail(fn, "jitter", "must be in [0, 0.5)", jitter);
  if (width < 0 || (width > 0 && width < 200)) fail(fn, "width", "must be 0 (auto) or >= 200", width);
  if (height < 0 || (height > 0 && height < 200)) fail(fn, "height", "must be 0 (auto) or >= 200", height);
  if (font_size < 0 || font_size > 72) fail(fn, "font_size", "must be in [0, 72]", font_size);
  if (gnuplot.empty()) fail(fn, "gnuplot", "must name a program", "\"\"");
  if (columns < 0) fail(fn, "columns", "must be >= 0", columns);
  if (key != "below" && key != "right") fail(fn, "key", "must be below or right", key);
}

std::string gnuplot_script(const std::vector<PlotPanel>& panels, const std::string& output,
                           const PlotOptions& opt, const std::string& terminal_hint) {
  opt.validate();
  if (panels.empty()) fail("gnuplot_script", "panels", "must not be empty", 0);
  for (const auto& p : panels)
    if (p.series.empty()) fail("gnuplot_script", "panel '" + p.title + "'", "must have a series", 0);
  if (output.find('\'') != std::string::npos || output.find('\n') != std::string::npos)
    fail("gnuplot_script", "output path", "must not contain quotes or newlines", output);

  const int n_panels = static_cast<int>(panels.size());
  const int n_cols = opt.columns > 0 ? std::min(opt.columns, n_panels) : n_panels;
  const int n_rows = (n_panels + n_cols - 1) / n_cols;
  const int width = opt.width > 0 ? opt.width : 1000 * n_cols + 100;
  const int height = opt.height > 0 ? opt.height : (n_panels == 1 ? 820 : n_rows > 1 ? 640 * n_rows : 860);
  const int font_size = opt.font_size > 0 ? opt.font_size : (n_panels == 1 ? 18 : 17);
  const std::string ext = lower_extension(terminal_hint.empty() ? output : terminal_hint);
  const std::string level_text = percent(panels.front().series.front().fit.level > 0
                                             ? panels.front().series.front().fit.level
                                             : 0.95);

  // Colours by key, in order of first appearance across panels.
  std::vector<std::string> keys;
  auto colour_of = [&](const PlotSeries& s) {
    const std::string key = s.colour_key.empty() ? s.label : s.colour_key;
    auto it = std::find(keys.begin(), keys.end(), key);
    if (it == keys.end()) {
      keys.push_back(key);
      it = keys.end() - 1;
    }
    return palette[static_cast<std::size_t>(it - keys.begin()) % palette.size()];
  };

  std::ostringstream data, cmds;
  Range x_all, y_all;
  std::vector<Range> y_panel(panels.size());
  std::vector<std::vector<std::string>> panel_plots(panels.size());
  std::vector<std::size_t> key_rows(panels.size(), 1);

  for (std::size_t p = 0; p < panels.size(); ++p) {
    const auto& series = panels[p].series;
    std::vector<std::string> bands, reps, meds, lines;
    const double n_series = static_cast<double>(series.size());
    bool any_theory = false;
    for (const auto& ser : series) any_theory = any_theory || (ser.theory && ser.fit.fitted);
    for (std::size_t s = 0; s < series.size(); ++s) {
      const PlotSeries& ser = series[s];
      const std::string colour = colour_of(ser);
      const std::string id = std::to_string(p) + "_" + std::to_string(s);
      const LossTable used = usable_rows(ser.data, opt.exclude_capped);
      const double dodge = series.size() > 1 ? std::exp(0.03 * (s - (n_series - 1) / 2)) : 1.0;

      // Replicates, jittered along n.
      data << "$rep_" << id << " << EOD\n";
      for (std::size_t i = 0; i < used.size(); ++i) {
        Rng rng(derive_seed(0x706c6f74ULL, {p, s, i}));
        const double jit = opt.jitter > 0 ? std::exp(rng.uniform(-opt.jitter, opt.jitter)) : 1.0;
        data << num(used.n[i] * jit * dodge) << ' ' << num(used.loss[i]) << '\n';
        x_all.add(used.n[i] * jit * dodge);
        y_all.add(used.loss[i]);
        y_panel[p].add(used.loss[i]);
      }
      data << "EOD\n";
      if (used.size() > 0)
        reps.push_back("$rep_" + id + " using 1:2 with points pt 7 ps 0.45 lc rgb \"#A8" +
                       colour.substr(1) + "\" notitle");

      // Medians with quantile bars.
      const auto sums = summarise_by_n(ser.data, opt.exclude_capped, opt.bar_low, opt.bar_high);
      data << "$med_" << id << " << EOD\n";
      for (const auto& m : sums) {
        data << num(m.n * dodge) << ' ' << num(m.median) << ' ' << num(m.q_low) << ' '
             << num(m.q_high) << '\n';
        y_all.add(m.q_low);
        y_panel[p].add(m.q_low);
        y_all.add(m.q_high);
        y_panel[p].add(m.q_high);
      }
      data << "EOD\n";
      if (!sums.empty())
        meds.push_back("$med_" + id + " using 1:2:3:4 with yerrorbars pt 7 ps 1.1 lw 1.6 lc rgb \"" +
                       colour + "\" notitle");

      const RateFit& f = ser.fit;
      if (f.fitted) {
        data << "$fit_" << id << " << EOD\n";
        for (const auto& b : f.band) {
          data << num(b.n) << ' ' << num(b.fit) << ' ' << num(b.low) << ' ' << num(b.high) << '\n';
          x_all.add(b.n);
          y_all.add(b.low);
        y_panel[p].add(b.low);
          y_all.add(b.high);
        y_panel[p].add(b.high);
        }
        data << "EOD\n";
        bands.push_back("$fit_" + id + " using 1:3:4 with filledcurves fc rgb \"" + colour +
                        "\" fs transparent solid 0.22 noborder notitle");
        const std::string title = ser.label + ": e = " + fixed(f.exponent, 3) + " [" +
                                  fixed(f.ci_low, 3) + ", " + fixed(f.ci_high, 3) + "]";
        lines.push_back("$fit_" + id + " using 1:2 with lines lw 3 lc rgb \"" + colour +
                        "\" title " + quote(title));
        if (!ser.theory && any_theory) {
          lines.push_back("keyentry with lines lc rgb \"#FFFFFF\" title \" \"");  // keeps pairs in rows
        }
        if (ser.theory) {
          const double e = *ser.theory;
          data << "$th_" << id << " << EOD\n";
          for (double n : {f.n_min, f.n_max}) {
            data << num(n) << ' ' << num(theory_at(f, e, n)) << '\n';
            y_all.add(theory_at(f, e, n));
        y_panel[p].add(theory_at(f, e, n));
          }
          data << "EOD\n";
          lines.push_back("$th_" + id + " using 1:2 with lines dt (9,6) lw 2.5 lc rgb \"" + colour +
                          "\" title \"theory n^{-" + exponent_label(e) + "}\"");
        }
      } else {
        lines.push_back("keyentry with points pt 7 lc rgb \"" + colour + "\" title " +
                        quote(ser.label + ": not fitted (too few sizes)"));
        if (any_theory) lines.push_back("keyentry with lines lc rgb \"#FFFFFF\" title \" \"");
      }
    }
    auto& pl = panel_plots[p];
    pl.push_back("keyentry with points pt 7 ps 0.6 lc rgb \"#A0000000\" title \"replicates\"");
    pl.push_back("keyentry with yerrorbars pt 7 ps 1.1 lw 1.6 lc rgb \"#000000\" title \"median, " +
                 percent(opt.bar_low) + "-" + percent(opt.bar_high) + " of replicates\"");
    pl.push_back("keyentry with filledcurves fc rgb \"#000000\" fs transparent solid 0.22 noborder "
                 "title \"fit L = C n^{-e}, " + level_text + " bootstrap CI\"");
    if (any_theory)
      pl.push_back("keyentry with lines dt (9,6) lw 2.5 lc rgb \"#000000\" title \"theory n^{-E}, "
                   "through the fit at mid n\"");
    // The key fills column by column: an even row count keeps each series'
    // (fit, theory) pair together.
    // Blank entries at the end make the row count even.
    std::size_t rows = (pl.size() + lines.size() + 1) / 2;
    if (any_theory && rows % 2 == 1) ++rows;
    while (pl.size() + lines.size() < 2 * rows)
      lines.push_back("keyentry with lines lc rgb \"#FFFFFF\" title \" \"");
    key_rows[p] = rows;
    for (auto* v : {&bands, &reps, &meds, &lines}) pl.insert(pl.end(), v->begin(), v->end());
  }
  if (x_all.empty() || y_all.empty())
    throw InvalidArgument("gnuplot_script: no usable (finite, positive) losses to draw");
  const Range xr = x_all.padded(0.04, 0.05);
  const Range yr = y_all.padded(0.05, 0.1);

  std::ostringstream s;
  s << "# moerate plot: convergence figure (generated; edit freely)\n";
  s << terminal_line(ext, width, height, opt, font_size);
  s << "set output '" << output << "'\n";
  s << "set encoding utf8\n";
  s << data.str();
  s << "set logscale xy 10\n";
  s << "set xrange [" << num(xr.lo) << ":" << num(xr.hi) << "]\n";
  s << "set yrange [" << num(yr.lo) << ":" << num(yr.hi) << "]\n";
  s << log_tics("x", xr.lo, xr.hi) << log_tics("y", yr.lo, yr.hi);
  s << "set tics nomirror out scale 0.8,0.4\n";
  s << "set border 3 lw 1.2\n";
  s << "set grid xtics ytics lt 1 lw 0.8 lc rgb \"#e4e4e4\"\n";
  s << "set xlabel " << quote(opt.x_label) << "\n";
  s << "set ylabel " << quote(opt.y_label) << "\n";
  s << "set bars small\n";
  // A single panel's key is two columns below the plot: at the panel's font size minus 3
  // its labels no longer fit side by side and gnuplot stacks them in one column taller
  // than the plot; 6 points smaller they fit.
  const std::string key_font = std::to_string(std::max(8, font_size - (n_panels == 1 ? 6 : 3)));
  if (n_panels > 1) {
    s << "set multiplot layout " << n_rows << "," << n_cols;
    if (!opt.title.empty()) s << " title " << quote(opt.title) << " font \"," << font_size + 3 << "\"";
    s << "\n";
  } else if (!opt.title.empty()) {
    s << "set title " << quote(opt.title) << " font \"," << font_size + 2 << "\"\n";
  }
  for (std::size_t p = 0; p < panels.size(); ++p) {
    if (n_panels > 1) {
      if (panels[p].title.empty())
        s << "unset title\n";
      else
        s << "set title " << quote(panels[p].title) << " font \"," << font_size + 1 << "\"\n";
    } else if (opt.title.empty() && !panels[p].title.empty()) {
      s << "set title " << quote(panels[p].title) << " font \"," << font_size + 2 << "\"\n";
    }
    if (!opt.shared_y && !y_panel[p].empty()) {
      const Range yp = y_panel[p].padded(0.05, 0.1);
      s << "set yrange [" << num(yp.lo) << ":" << num(yp.hi) << "]\n" << log_tics("y", yp.lo, yp.hi);
    }
    if (opt.key == "right")
      s << "set key outside right top vertical Left reverse samplen 1.6 spacing 1.0 width 1 font \","
        << std::max(8, font_size - 6) << "\"\n";
    else
      s << "set key below center horizontal Left reverse maxrows " << key_rows[p]
        << " samplen 2.2 spacing 1.15 width 2 height 1.2 font \"," << key_font << "\"\n";
    s << "plot ";
    const auto& pl = panel_plots[p];
    for (std::size_t i = 0; i < pl.size(); ++i) s << (i ? ", \\\n     " : "") << pl[i];
    s << "\n";
  }
  if (n_panels > 1) s << "unset multiplot\n";
  s << "unset output\n";
  return s.str();
}

namespace {

std::string read_text(const std::string& path, std::size_t max_chars) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > max_chars) text = text.substr(0, max_chars) + "...";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Runs `program script` with stdout and stderr to log; returns the exit status.
int run_program(const std::string& program, const std::string& script, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), const_cast<char*>(script.c_str()),
                             nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc == ENOENT)
    throw std::runtime_error("plot: gnuplot not found ('" + program +
                             "' is not on PATH); install gnuplot (apt install gnuplot-nox) or "
                             "name the program with --gnuplot PATH");
  if (rc != 0)
    throw std::runtime_error("plot: cannot run '" + program + "': " + std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("plot: waitpid failed: " + std::string(std::strerror(errno)));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

void plot_panels(const std::vector<PlotPanel>& panels, const std::string& out_path,
                 const PlotOptions& opt) {
  opt.validate();
  render_gnuplot([&](const std::string& tmp_out) { return gnuplot_script(panels, tmp_out, opt, out_path); },
                 out_path, opt.gnuplot, opt.save_script);
}

void render_gnuplot(const std::function<std::string(const std::string&)>& script_for,
                    const std::string& out_path, const std::string& gnuplot, const std::string& save_script) {
  namespace fs = std::filesystem;
  if (out_path.empty()) fail("render_gnuplot", "output path", "must not be empty", "\"\"");
  const std::string ext = lower_extension(out_path);
  if (ext != ".png" && ext != ".svg" && ext != ".pdf")
    throw InvalidArgument("plot: output must end in .png, .svg or .pdf; got '" + out_path + "'");
  check_output_path(out_path);
  if (!save_script.empty()) check_output_path(save_script, {out_path});
  // Temporary output beside the target (same file system, so rename is atomic).
  const fs::path target(out_path);
  const fs::path out_dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(out_dir))
    throw std::runtime_error("plot: directory does not exist: " + out_dir.string());
  std::string tmp_out = (out_dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = mkstemp(tmp_out.data());
  if (fd < 0)
    throw std::runtime_error("plot: cannot create a file beside '" + out_path + "': " +
                             std::strerror(errno));
  {
    // mkstemp makes the file 0600; give the figure the usual permissions.
    const mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
  }
  close(fd);
  register_temp_file(tmp_out);

  const char* tmpdir_env = std::getenv("TMPDIR");
  std::string dir_template =
      std::string(tmpdir_env && *tmpdir_env ? tmpdir_env : "/tmp") + "/moerate-plot-XXXXXX";
  if (!mkdtemp(dir_template.data())) {
    std::remove(tmp_out.c_str());
    throw std::runtime_error("plot: cannot create a temporary directory: " +
                             std::string(std::strerror(errno)));
  }
  const fs::path dir(dir_template);
  register_temp_file(dir.string());
  register_temp_file((dir / "figure.gp").string());
  register_temp_file((dir / "gnuplot.log").string());
  auto cleanup = [&]() {
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::remove(tmp_out, ec);
    for (const auto& p : {tmp_out, dir.string(), (dir / "figure.gp").string(), (dir / "gnuplot.log").string()})
      unregister_temp_file(p);
  };
  try {
    const std::string script = script_for(tmp_out);
    const std::string script_path = (dir / "figure.gp").string();
    {
      std::ofstream f(script_path);
      f << script;
      if (!f) throw std::runtime_error("plot: cannot write " + script_path);
    }
    if (!save_script.empty()) write_file_atomic(save_script, script);
    const std::string log = (dir / "gnuplot.log").string();
    const int rc = run_program(gnuplot, script_path, log);
    const std::string messages = read_text(log, 2000);
    if (rc != 0)
      throw std::runtime_error("plot: gnuplot failed (exit status " + std::to_string(rc) + ")" +
                               (messages.empty() ? std::string() : ":\n" + messages));
    std::error_code ec;
    if (fs::file_size(tmp_out, ec) == 0 || ec)
      throw std::runtime_error("plot: gnuplot wrote no figure" +
                               (messages.empty() ? std::string() : ":\n" + messages));
    fs::rename(tmp_out, out_path, ec);
    if (ec) throw std::runtime_error("plot: cannot rename into '" + out_path + "': " + ec.message());
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
}

void plot_side_by_side(const PlotPanel& left, const PlotPanel& right, const std::string& out_path,
                       const PlotOptions& opt) {
  plot_panels({left, right}, out_path, opt);
}

PlotPanel panel_from_results(const CsvTable& table, const std::string& setting,
                             const std::vector<std::string>& metrics,
                             const std::map<std::string, double>& theory,
                             const RateFitOptions& fit_options, const std::string& title,
                             bool prefix_setting, const std::string& source,
                             std::vector<std::string>* skipped) {
  PlotPanel panel;
  panel.title = title;
  for (const auto& m : metrics) {
    PlotSeries s;
    s.data = loss_table_from_results(table, m, setting, source);
    if (usable_rows(s.data, fit_options.exclude_capped).size() == 0) {
      if (skipped) skipped->push_back(m);
      continue;
    }
    const std::string short_name = m.rfind("m.", 0) == 0 ? m.substr(2) : m;
    s.label = prefix_setting ? short_name + " (" + setting + ")" : short_name;
    s.colour_key = prefix_setting ? s.label : m;
    s.fit = fit_rate(s.data, fit_options);
    if (auto it = theory.find(m); it != theory.end()) s.theory = it->second;
    panel.series.push_back(std::move(s));
  }
  return panel;
}

void plot_fit(const FitFigure& fig, const std::string& out_path, const PlotOptions& opt) {
  opt.validate();
  const std::size_t k = fig.means.n_rows, G = fig.grid.n_elem;
  if (fig.x.n_elem != fig.y.n_elem || fig.x.is_empty())
    fail("plot_fit", "data", "must be non-empty x and y of one length", fig.x.n_elem);
  if (G < 2 || fig.means.n_cols != G || fig.gates.n_cols != G || fig.gates.n_rows != k ||
      fig.predictive_mean.n_elem != G)
    fail("plot_fit", "curves", "must have one column per grid point", G);
  const int width = opt.width > 0 ? opt.width : 1200, height = opt.height > 0 ? opt.height : 860;
  const int font_size = opt.font_size > 0 ? opt.font_size : 16;
  auto script = [&](const std::string& tmp_out) {
    std::ostringstream s;
    s << terminal_line(lower_extension(out_path), width, height, opt, font_size);
    s << "set output '" << tmp_out << "'\n";
    s << "$data << EOD\n";
    for (std::size_t i = 0; i < fig.x.n_elem; ++i) s << num(fig.x[i]) << ' ' << num(fig.y[i]) << '\n';
    s << "EOD\n$grid << EOD\n";
    for (std::size_t i = 0; i < G; ++i) {
      s << num(fig.grid[i]) << ' ' << num(fig.predictive_mean[i]);
      for (std::size_t j = 0; j < k; ++j) s << ' ' << num(fig.means(j, i)) << ' ' << num(fig.gates(j, i));
      s << '\n';
    }
    s << "EOD\n";
    // Right margin reserved for the legends (outside the data).
    s << "set multiplot layout 2,1 margins 0.09,0.78,0.09,0.92 spacing 0,0.08";
    if (!opt.title.empty()) s << " title " << quote(opt.title) << " font \"," << font_size + 2 << "\"";
    s << "\n";
    s << "set grid lc rgb \"#dddddd\"\nset border 3\nset tics nomirror\n";
    s << "set key outside right top Left reverse samplen 2\n";
    s << "set xrange [" << num(fig.grid[0]) << ":" << num(fig.grid[G - 1]) << "]\n";
    s << "set ylabel " << quote(fig.y_label) << "\n";
    s << "plot $data using 1:2 with points pt 7 ps 0.6 lc rgb \"#888888\" title \"data\"";
    for (std::size_t j = 0; j < k; ++j)
      s << ", $grid using 1:" << 3 + 2 * j << " with lines lw 3 lc rgb \"" << palette[j % palette.size()]
        << "\" title \"expert " << j + 1 << "\"";
    s << ", $grid using 1:2 with lines lw 2 dt 2 lc rgb \"#000000\" title \"predictive mean\"\n";
    s << "set xlabel " << quote(fig.x_label) << "\nset ylabel \"gate weight\"\nset yrange [-0.02:1.02]\n";
    s << "plot ";
    for (std::size_t j = 0; j < k; ++j)
      s << (j ? ", " : "") << "$grid using 1:" << 4 + 2 * j << " with lines lw 3 lc rgb \""
        << palette[j % palette.size()] << "\" title \"{/Symbol p}_" << j + 1 << "(x)\"";
    s << "\nunset multiplot\n";
    return s.str();
  };
  render_gnuplot(script, out_path, opt.gnuplot, opt.save_script);
}

void plot_selection(const SelectionResult& s, const std::string& out_path, const PlotOptions& opt) {
  opt.validate();
  if (s.rows.empty()) fail("plot_selection", "rows", "must be non-empty", 0);
  const int width = opt.width > 0 ? opt.width : 1100, height = opt.height > 0 ? opt.height : 760;
  const int font_size = opt.font_size > 0 ? opt.font_size : 16;
  const std::vector<std::string> names = {"AIC", "BIC", "ICL"};
  auto value = [&](const SelectionRow& r, std::size_t c) { return c == 0 ? r.aic : c == 1 ? r.bic : r.icl; };
  auto script = [&](const std::string& tmp_out) {
    std::ostringstream g;
    g << terminal_line(lower_extension(out_path), width, height, opt, font_size);
    g << "set output '" << tmp_out << "'\n";
    // Columns: k, then per criterion: value (all fits), value (degenerate fits only, else NaN).
    g << "$crit << EOD\n";
    for (const auto& r : s.rows) {
      g << r.k;
      for (std::size_t c = 0; c < 3; ++c) {
        const double v = value(r, c);
        g << ' ' << (std::isfinite(v) ? num(v) : "NaN") << ' ' << (r.degenerate && std::isfinite(v) ? num(v) : "NaN");
      }
      g << '\n';
    }
    g << "EOD\n";
    if (!opt.title.empty()) g << "set title " << quote(opt.title) << "\n";
    g << "set grid lc rgb \"#dddddd\"\nset border 3\nset tics nomirror\n";
    g << "set key outside below\n";
    g << "set xlabel " << quote("number of experts k") << "\nset ylabel " << quote("criterion (lower is better)") << "\n";
    g << "set xtics 1\nset xrange [" << num(s.rows.front().k - 0.3) << ":" << num(s.rows.back().k + 0.3) << "]\n";
    g << "plot ";
    for (std::size_t c = 0; c < 3; ++c) {
      const auto& p = s.picks.size() > c ? s.picks[c] : CriterionPick{};
      std::string label = names[c];
      label += p.k ? std::string(" (pick k = ") + std::to_string(p.k) + ")" : std::string(" (no pick)");
      g << (c ? ", " : "") << "$crit using 1:" << 2 + 2 * c << " with linespoints lw 2 pt 7 ps 1.2 lc rgb \""
        << palette[c] << "\" title " << quote(label);
    }
    bool any_degenerate = false;
    for (const auto& r : s.rows) any_degenerate = any_degenerate || r.degenerate;
    for (std::size_t c = 0; c < 3; ++c)
      g << ", $crit using 1:" << 3 + 2 * c << " with points pt 6 ps 3 lw 2 lc rgb \"#000000\" title "
        << (c == 0 && any_degenerate ? quote("degenerate fit (never picked)") : std::string("\"\""));
    for (std::size_t c = 0; c < 3 && c < s.picks.size(); ++c) {
      if (!s.picks[c].k) continue;
      const auto& r = s.rows[s.picks[c].k - s.rows.front().k];
      g << ", '+' using (" << r.k << "):(" << num(value(r, c)) << ") every ::0::0 with points pt 3 ps 2.5 lw 2 lc rgb \""
        << palette[c] << "\" notitle";
    }
    g << "\n";
    return g.str();
  };
  render_gnuplot(script, out_path, opt.gnuplot, opt.save_script);
}

void plot_dendrogram(const Dendrogram& d, const std::string& out_path, const PlotOptions& opt) {
  opt.validate();
  if (d.levels.empty()) fail("plot_dendrogram", "levels", "must be non-empty", 0);
  const std::size_t K = d.levels.front().k;
  // Display heights: monotone along the tree (a merge is drawn no lower than its
  // children), on a log axis; leaves sit a decade below the smallest positive height.
  double min_pos = std::numeric_limits<double>::infinity(), max_h = 0;
  for (const auto& m : d.merges)
    if (m.height > 0) min_pos = std::min(min_pos, m.height), max_h = std::max(max_h, m.height);
  if (!std::isfinite(min_pos)) min_pos = 1, max_h = 1;
  const double leaf_y = min_pos / 10;
  std::vector<double> x(K + d.merges.size(), 0), y(K + d.merges.size(), leaf_y);
  // Leaf order: depth-first from the root so that branches never cross.
  std::vector<std::size_t> order;
  std::function<void(std::size_t)> visit = [&](std::size_t node) {
    if (node < K) {
      order.push_back(node);
      return;
    }
    visit(d.merges[node - K].a);
    visit(d.merges[node - K].b);
  };
  if (d.merges.empty()) order.push_back(0);
  else visit(d.merges.back().node);
  for (std::size_t i = 0; i < order.size(); ++i) x[order[i]] = double(i + 1);
  const std::vector<double>& w = d.leaf_weights;
  std::ostringstream seg;
  for (const auto& m : d.merges) {
    const double h = std::max({m.height, y[m.a], y[m.b], leaf_y});
    x[m.node] = 0.5 * (x[m.a] + x[m.b]);
    y[m.node] = h;
    seg << num(x[m.a]) << ' ' << num(y[m.a]) << '\n' << num(x[m.a]) << ' ' << num(h) << '\n'
        << num(x[m.b]) << ' ' << num(h) << '\n' << num(x[m.b]) << ' ' << num(y[m.b]) << "\n\n";
  }
  // The cut that leaves chosen_k atoms: between the merges that leave levels chosen_k + 1 and chosen_k.
  double cut = std::nan("");
  if (d.chosen_k >= 1 && d.chosen_k < K) {
    const double below = y[K + (K - d.chosen_k - 1)];
    const double above = d.chosen_k >= 2 ? y[K + (K - d.chosen_k)] : below * 10;
    cut = std::sqrt(below * above);
  } else if (d.chosen_k == K) {
    cut = std::sqrt(leaf_y * (d.merges.empty() ? leaf_y * 10 : y[K]));
  }
  const int width = opt.width > 0 ? opt.width : 1100, height = opt.height > 0 ? opt.height : 900;
  const int font_size = opt.font_size > 0 ? opt.font_size : 16;
  auto script = [&](const std::string& tmp_out) {
    std::ostringstream g;
    g << terminal_line(lower_extension(out_path), width, height, opt, font_size);
    g << "set output '" << tmp_out << "'\n";
    g << "$seg << EOD\n" << seg.str() << "EOD\n";
    g << "$lev << EOD\n";
    for (const auto& lev : d.levels) g << lev.k << ' ' << num(lev.mean_log_likelihood) << ' ' << num(lev.dsc) << '\n';
    g << "EOD\n";
    g << "set multiplot layout 2,1 margins 0.12,0.86,0.08,0.92 spacing 0,0.1";
    if (!opt.title.empty()) g << " title " << quote(opt.title) << " font \"," << font_size + 2 << "\"";
    g << "\n";
    g << "set grid lc rgb \"#dddddd\"\nset border 3\nset tics nomirror\n";
    g << "set logscale y\nset yrange [" << num(leaf_y / 2) << ":" << num(std::max(max_h, leaf_y) * 3) << "]\n";
    g << "set xrange [0.5:" << num(K + 0.5) << "]\nset xtics (";
    for (std::size_t i = 0; i < order.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "atom %zu\\n(p = %.3g)", order[i] + 1, order[i] < w.size() ? w[order[i]] : NAN);
      g << (i ? ", " : "") << "\"" << buf << "\" " << i + 1;
    }
    g << ")\nset ylabel " << quote("merge height") << "\nset key top left opaque box\n";
    g << "plot $seg using 1:2 with lines lw 2 lc rgb \"" << palette[0] << "\" title \"merges\"";
    if (std::isfinite(cut))
      g << ", " << num(cut) << " with lines dt 2 lw 2 lc rgb \"" << palette[1] << "\" title "
        << quote(std::string("cut: k = ") + std::to_string(d.chosen_k) + " (DSC)");
    g << "\nunset logscale y\nset autoscale y\nset xtics 1\nset xrange [0.5:" << num(K + 0.5) << "]\n";
    g << "set xlabel " << quote("number of atoms k (level of the dendrogram)") << "\n";
    g << "set ylabel " << quote("mean log-likelihood") << "\nset y2label " << quote("DSC = h(k) + w lbar(k)")
      << "\nset y2tics\nset key bottom right opaque box\n";
    g << "plot $lev using 1:2 with linespoints lw 2 pt 7 lc rgb \"" << palette[2]
      << "\" title \"mean log-likelihood\", $lev using 1:3 axes x1y2 with linespoints lw 2 pt 5 lc rgb \"" << palette[3]
      << "\" title \"DSC (argmax = k)\"\n";
    g << "unset multiplot\n";
    return g.str();
  };
  render_gnuplot(script, out_path, opt.gnuplot, opt.save_script);
}

}  // namespace moerate
