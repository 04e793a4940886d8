// The README's commands, checked against the tree: CI runs exactly its test
// command, and every program it tells a new user to run is where the build
// puts it (a README that drifts from the build is the first thing a new user
// trips over).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef PORTD_SOURCE_DIR
#error "PORTD_SOURCE_DIR must name the source tree"
#endif

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The lines of every ```sh block of the README that are not comments.
std::vector<std::string> readme_commands() {
  std::istringstream in(read_file(PORTD_SOURCE_DIR "/README.md"));
  std::vector<std::string> out;
  bool in_sh = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("```", 0) == 0) {
      in_sh = !in_sh && line == "```sh";
      continue;
    }
    if (in_sh && !line.empty() && line[0] != '#') out.push_back(line);
  }
  return out;
}

// `path` relative to the build directory, as the README spells it
// ("build/...").
std::string as_in_readme(const std::string& path) {
  const std::string build = BUILD_DIR "/";
  EXPECT_EQ(path.rfind(build, 0), 0u) << path;
  return "build/" + path.substr(build.size());
}

bool readme_names(const std::string& program) {
  return read_file(PORTD_SOURCE_DIR "/README.md").find(program + " ") != std::string::npos;
}

TEST(Readme, CiRunsExactlyTheReadmesTestCommand) {
  const auto commands = readme_commands();
  ASSERT_GE(commands.size(), 2u);
  const std::string& test_command = commands[1];
  EXPECT_NE(test_command.find("ctest --test-dir build"), std::string::npos) << test_command;
  EXPECT_EQ(test_command.rfind("tools/install-deps.sh && ", 0), 0u) << test_command;

  // .ci/run: a shell script whose first command is that line; what it runs
  // after it (the sanitizer run, the optimized build) the README shows too.
  // Each line ends in `|| exit 1`: `set -e` does not stop a script at a
  // command that fails inside an `a && b && c` list, so without it a failed
  // build or test on one line would go on to the next, and the script's
  // status would be the last line's alone.
  const std::string fail_fast = " || exit 1";
  std::istringstream ci(read_file(PORTD_SOURCE_DIR "/.ci/run"));
  std::vector<std::string> ci_commands;
  for (std::string line; std::getline(ci, line);) {
    if (line.empty() || line[0] == '#' || line.rfind("set ", 0) == 0 || line.rfind("cd ", 0) == 0)
      continue;
    const bool stops =
        line.size() > fail_fast.size() &&
        line.compare(line.size() - fail_fast.size(), fail_fast.size(), fail_fast) == 0;
    EXPECT_TRUE(stops) << ".ci/run goes on past a failure of: " << line;
    if (stops) line.resize(line.size() - fail_fast.size());
    ci_commands.push_back(line);
  }
  ASSERT_GE(ci_commands.size(), 1u);
  EXPECT_EQ(ci_commands[0], test_command);
  for (size_t i = 1; i < ci_commands.size(); ++i)
    EXPECT_NE(std::find(commands.begin(), commands.end(), ci_commands[i]), commands.end())
        << ".ci/run runs what the README does not show: " << ci_commands[i];
}

TEST(Readme, FirstCommandBuildsAndStartsTheDaemon) {
  const auto commands = readme_commands();
  ASSERT_GE(commands.size(), 1u);
  const std::string start = " && " + as_in_readme(PORTD_BINARY);
  const std::string& first = commands[0];
  ASSERT_GE(first.size(), start.size());
  EXPECT_EQ(first.substr(first.size() - start.size()), start) << first;
  EXPECT_EQ(first.rfind("tools/install-deps.sh && cmake -S . -B build", 0), 0u) << first;
}

TEST(Readme, ProgramsItRunsAreWhereTheBuildPutsThem) {
  for (const std::string program : {ECHO_SERVER_BINARY, ECHO_CLIENT_BINARY, PORTCTL_BINARY}) {
    SCOPED_TRACE(program);
    EXPECT_TRUE(readme_names(as_in_readme(program)));
  }
}

}  // namespace
